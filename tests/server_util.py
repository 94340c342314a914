"""Start ``logmq serve`` as a real subprocess on a free loopback port, for client tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading


class ServerProcess:
    def __init__(self, data: str, *extra: str) -> None:
        self.data = data
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> ServerProcess:
        listen = f"127.0.0.1:{self.port}"  # port 0 first: the OS picks a free one
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logmq.cli", "serve", "--data", self.data,
             "--listen", listen, *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # blocks on the server's own log, no polling
            self.lines.append(line)
            m = re.search(r"listening on ([\d.]+):(\d+)", line)
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                break
        else:
            raise RuntimeError("server exited before listening:\n" + "".join(self.lines))
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.stop(signal.SIGKILL)
