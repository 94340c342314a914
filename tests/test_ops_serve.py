"""`logmq serve` startup: one-line errors with exit code 2, LOGMQ_DATA, --advertise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest
from confluent_kafka.admin import AdminClient
from ops_util import ServerProcess, get_json, http_address


def _serve(*args: str, env: dict | None = None, cwd: str | None = None
           ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logmq.cli", "serve", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("content", "message"), [
    ('num_partitions = "four"\n', "num_partitions must be int, got 'four'"),
    ("num_partitions = true\n", "num_partitions must be int, got True"),
    ("num_partitions =\n", "not valid TOML"),
    ("bogus = 1\n", "unknown key 'bogus'"),
    ('retention_ms = "soon"\n', "invalid value 'soon' for retention.ms"),
    ("[topic_defaults]\nretention_msx = 1\n", "unknown topic config 'retention_msx'"),
])
def test_config_file_errors_are_one_line_with_exit_code_2(tmp_path, content, message):
    cfg = tmp_path / "logmq.toml"
    cfg.write_text(content)
    r = _serve("--data", str(tmp_path / "d"), "--config", str(cfg))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert message in lines[0]
    if "TOML" in message or "unknown" in message or "must be" in message:
        assert str(cfg) in lines[0]  # names the file


@pytest.mark.parametrize("flag", ["--listen", "--http"])
def test_a_port_in_use_is_one_line_with_exit_code_2(tmp_path, flag):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = f"127.0.0.1:{s.getsockname()[1]}"
        args = ["--listen", taken] if flag == "--listen" else \
            ["--listen", "127.0.0.1:0", "--http", taken]
        r = _serve("--data", str(tmp_path / "d"), *args)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr and last.startswith("Error: cannot listen")
    assert "in use" in last and taken.split(":")[1] in last


def test_logmq_data_is_honoured_by_serve_and_demo(tmp_path):
    env_dir = tmp_path / "from-env"
    r = subprocess.run([sys.executable, "-m", "logmq.cli", "demo", "--records", "50"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env={**os.environ, "LOGMQ_DATA": str(env_dir)})
    assert r.returncode == 0, r.stderr
    assert os.path.isdir(env_dir / "demo-0") and not os.path.exists(tmp_path / "logmq-data")
    srv = SimpleNamespace(lines=[])  # ServerProcess always passes --data: not here
    proc = subprocess.Popen([sys.executable, "-m", "logmq.cli", "serve", "--listen",
                             "127.0.0.1:0", "--http", "127.0.0.1:0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env={**os.environ, "LOGMQ_DATA": str(env_dir)})
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            srv.lines.append(line)
            if "listening on" in line:
                break
        status, cfg = get_json(http_address(srv), "/api/v1/config")
        assert cfg["path"] == str(env_dir)
        status, topics = get_json(http_address(srv), "/api/v1/topics")
        assert [t["name"] for t in topics] == ["demo"]
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_advertise_sets_what_metadata_tells_clients(tmp_path):
    with ServerProcess(str(tmp_path / "d"), "--advertise", "127.0.0.2:19092") as srv:
        md = AdminClient({"bootstrap.servers": srv.bootstrap}).list_topics(timeout=10)
        assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.2", 19092)]
    with ServerProcess(str(tmp_path / "d"), "--advertise", "127.0.0.2") as srv:
        md = AdminClient({"bootstrap.servers": srv.bootstrap}).list_topics(timeout=10)
        assert [(b.host, b.port) for b in md.brokers.values()] == \
            [("127.0.0.2", srv.port)]
