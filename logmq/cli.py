"""Command-line entry point (filled in by the broker work)."""


def main() -> None:
    print("logmq")
