"""``python -m logmq.examples``: list the examples and how to run them."""

from __future__ import annotations

import ast
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    for name in sorted(os.listdir(HERE)):
        if not name.endswith(".py") or name.startswith("_"):
            continue
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
        # (read, not imported: kafka_client needs confluent-kafka, which logmq does not)
        print(f"python -m logmq.examples.{name[:-3]:<16} {doc.splitlines()[0] if doc else ''}")


if __name__ == "__main__":
    main()
