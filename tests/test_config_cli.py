"""One configuration: flag > LOGMQ_* > TOML file > default for every serve setting, with
provenance (--print-config), one-line errors naming key and source (exit 2), $LOGMQ_DATA
for every command, and the generated reference page."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner
from conftest import ROOT

from logmq.cli import cli
from logmq.config import BROKER_KEYS, LIMIT_KEYS
from logmq.config_load import load_broker_config
from logmq.errors import ConfigKeyError
from logmq.ops.serve_options import server_limits
from logmq.server.limits import ServerLimits
from logmq.wire_client import WireClient

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def clean_env(monkeypatch):
    for var in list(os.environ):
        if var.startswith("LOGMQ_") and var not in ("LOGMQ_PURE",):
            monkeypatch.delenv(var)


def serve(*args: str, env: dict | None = None, code: int = 0):
    r = CliRunner().invoke(cli, ["serve", *args], env=env, catch_exceptions=False)
    assert r.exit_code == code, (r.output, r.stderr)
    return r


def printed(*args: str, env: dict | None = None) -> dict[str, tuple[str, str]]:
    """``serve --print-config`` as {key: (value, source)}."""
    out = serve("--print-config", *args, env=env).stdout
    rows = {}
    for line in out.splitlines():
        key, value, source = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        rows[key] = (value, source)
    return rows


# ---------------------------------------------------------------------- precedence
def test_flag_beats_env_beats_file_beats_default(tmp_path):
    f = tmp_path / "logmq.toml"
    f.write_text('num_partitions = 2\nlisten = "127.0.0.1:1001"\nrepair = true\n'
                 '[limits]\nmax_connections = 20\nmax_fetch_wait_ms = 5\n'
                 '[topic_defaults]\n"retention.ms" = 1000\n"segment.bytes" = 4096\n')
    env = {"LOGMQ_NUM_PARTITIONS": "3", "LOGMQ_LISTEN": "127.0.0.1:1002",
           "LOGMQ_LIMITS_MAX_CONNECTIONS": "30", "LOGMQ_TOPIC_RETENTION_MS": "2000"}
    flags = ["--config", str(f), "--num-partitions", "4", "--limit", "max_connections=40",
             "--topic-default", "retention.ms=3000"]
    rows = printed(*flags, env=env)
    assert rows["num_partitions"] == ("4", "flag --num-partitions")
    assert rows["listen"] == ("127.0.0.1:1002", "env LOGMQ_LISTEN")
    assert rows["repair"] == ("true", f"file {f}")
    assert rows["cleaner"] == ("true", "default")
    assert rows["limits.max_connections"] == ("40", "flag --limit")
    assert rows["limits.max_fetch_wait_ms"] == ("5", f"file {f}")
    assert rows["limits.max_connections_per_ip"] == (
        str(ServerLimits().max_connections_per_ip), "default")
    assert rows["topic_defaults.retention.ms"] == ("3000", "flag --topic-default")
    assert rows["topic_defaults.segment.bytes"] == ("4096", f"file {f}")
    # one level down each time a higher source goes away
    rows = printed("--config", str(f), env=env)
    assert rows["num_partitions"] == ("3", "env LOGMQ_NUM_PARTITIONS")
    assert rows["limits.max_connections"] == ("30", "env LOGMQ_LIMITS_MAX_CONNECTIONS")
    assert rows["topic_defaults.retention.ms"] == ("2000", "env LOGMQ_TOPIC_RETENTION_MS")
    rows = printed("--config", str(f))
    assert rows["num_partitions"] == ("2", f"file {f}")
    assert rows["limits.max_connections"] == ("20", f"file {f}")
    rows = printed()
    assert rows["num_partitions"] == ("1", "default")
    assert rows["data"] == ("logmq-data", "default")
    assert rows["limits.max_connections"] == (str(ServerLimits().max_connections), "default")
    assert "topic_defaults.retention.ms" not in rows


def test_config_file_from_logmq_config_env(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("num_partitions = 7\n")
    assert printed(env={"LOGMQ_CONFIG": str(f)})["num_partitions"] == ("7", f"file {f}")


def test_every_setting_of_the_table_has_a_flag_and_an_env_variable():
    params = {p.name: p for p in cli.commands["serve"].params}
    for key, d in BROKER_KEYS.items():
        assert key in params, f"serve has no option for {key}"
        assert d.env == "LOGMQ_" + key.upper()
    for key in BROKER_KEYS:
        if key in ("limits",):
            continue
        d = BROKER_KEYS[key]
        base = d.default if d.type in (int, float) and d.default else 0
        number = str(max(int(base), 1 << 20) + 1)  # above every lower bound
        value = {bool: "false" if d.default else "true", int: number,
                 float: number}.get(d.type, "127.0.0.1:4242")
        if key in ("log_level",):
            value = "error"
        elif key in ("log_format",):
            value = "json"
        elif key in ("data", "advertised_host", "queue_authkey_file"):
            value = "somewhere"
        cfg = load_broker_config(env={d.env: value})
        assert cfg.sources[key] == f"env:{d.env}", key


def test_limits_table_matches_server_limits_and_reaches_it():
    fields = {f.name for f in dataclasses.fields(ServerLimits)}
    assert {d.attr for d in LIMIT_KEYS.values()} == fields - {"api_elements", "max_request_size"}
    cfg = load_broker_config(env={"LOGMQ_LIMITS_MAX_CONNECTIONS": "9",
                                  "LOGMQ_LIMITS_API_ELEMENTS_FETCH": "77",
                                  "LOGMQ_MAX_REQUEST_SIZE": "4096"},
                             flags={"limits": {"api_elements.produce": "5"}})
    lim = server_limits(cfg)
    assert lim.max_connections == 9 and lim.max_request_size == 4096
    assert lim.api_elements[0] == 5 and lim.api_elements[1] == 77
    assert lim.api_elements[3] == ServerLimits().api_elements[3]
    assert cfg.sources["limits.api_elements.fetch"] == "env:LOGMQ_LIMITS_API_ELEMENTS_FETCH"


def test_python_kwargs_sit_below_flags():
    cfg = load_broker_config({"num_partitions": 2}, env={"LOGMQ_NUM_PARTITIONS": "5"},
                             flags={"num_partitions": "3"})
    assert cfg.num_partitions == 3 and cfg.sources["num_partitions"] == "flag:--num-partitions"
    cfg = load_broker_config({"num_partitions": 2}, env={"LOGMQ_NUM_PARTITIONS": "5"})
    assert cfg.num_partitions == 2 and cfg.sources["num_partitions"] == "kwarg"


# ---------------------------------------------------------------------- errors
FILE_ERRORS = [
    ("bogus = 1\n", "unknown key 'bogus'"),
    ("num_partiton = 2\n", "unknown key 'num_partiton' (did you mean 'num_partitions'?)"),
    ('num_partitions = "4"\n', "num_partitions must be int, got '4'"),
    ("num_partitions = 2.5\n", "num_partitions must be int, got 2.5"),
    ("cleaner = 1\n", "cleaner must be true or false, got 1"),
    ("listen = 9092\n", "listen must be string, got 9092"),
    ('listen = "localhost"\n', "invalid value 'localhost' for listen: expected HOST:PORT"),
    ('http = "127.0.0.1:70000"\n', "invalid value '127.0.0.1:70000' for http"),
    ("num_partitions = 0\n", "invalid value 0 for num_partitions: must be >= 1"),
    ('log_format = "xml"\n', "invalid value 'xml' for log_format: must be one of text, json"),
    ("map_size = 10\n", "invalid value 10 for map_size: must be >= 1048576"),
    ("num_partitions =\n", "not valid TOML"),
    ("limits = 3\n", "limits must be a table"),
    ("[limits]\nmax_conections = 3\n",
     "unknown key 'limits.max_conections' (did you mean 'limits.max_connections'?)"),
    ('[limits]\nmax_connections = "3"\n', "limits.max_connections must be int, got '3'"),
    ("[limits]\nmax_connections = 0\n", "invalid value 0 for limits.max_connections: must be"),
    ("[limits.api_elements]\nproduec = 3\n", "unknown Kafka API 'produec'"),
    ("topic_defaults = 3\n", "topic_defaults must be a table"),
    ("[topic_defaults]\nretention_msx = 1\n", "unknown topic config 'retention_msx'"),
    ('[topic_defaults]\nfsync = "sometimes"\n', "invalid value 'sometimes' for fsync"),
    ("group_min_session_timeout_ms = 5000\ngroup_max_session_timeout_ms = 10\n",
     "group_max_session_timeout_ms (10) is below group_min_session_timeout_ms (5000)"),
    ("max_request_size = 4096\n[limits]\nqueued_max_request_bytes = 2048\n",
     "limits.queued_max_request_bytes (2048) is below max_request_size (4096)"),
]


def _one_line_error(r, *needles: str) -> str:
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.parametrize(("content", "message"), FILE_ERRORS)
def test_file_errors_are_one_line_naming_key_and_file(tmp_path, content, message):
    f = tmp_path / "bad.toml"
    f.write_text(content)
    r = CliRunner().invoke(cli, ["serve", "--print-config", "--config", str(f)])
    _one_line_error(r, message, str(f))
    with pytest.raises(Exception) as e:  # the API says the same, typed
        load_broker_config(file=f)
    assert message in str(e.value)


ENV_ERRORS = [
    ({"LOGMQ_NUM_PARTITIONS": "four"}, "LOGMQ_NUM_PARTITIONS: invalid value 'four' for "
                                       "num_partitions: expected an integer"),
    ({"LOGMQ_CLEANER": "perhaps"}, "LOGMQ_CLEANER: invalid value 'perhaps' for cleaner"),
    ({"LOGMQ_LIMITS_MAX_CONNECTIONS": "-1"}, "LOGMQ_LIMITS_MAX_CONNECTIONS: invalid value '-1'"),
    ({"LOGMQ_LIMITS_NOPE": "1"}, "LOGMQ_LIMITS_NOPE: unknown key 'limits.nope'"),
    ({"LOGMQ_TOPIC_NOPE": "1"}, "LOGMQ_TOPIC_NOPE: unknown topic config 'nope'"),
    ({"LOGMQ_ADVERTISE": "h:port"}, "LOGMQ_ADVERTISE: invalid value 'h:port' for advertise"),
]


@pytest.mark.parametrize(("env", "message"), ENV_ERRORS)
def test_env_errors_are_one_line_naming_key_and_variable(env, message):
    r = CliRunner().invoke(cli, ["serve", "--print-config"], env=env)
    _one_line_error(r, message)
    with pytest.raises(ConfigKeyError) as e:
        load_broker_config(env=env)
    assert e.value.source == f"env:{next(iter(env))}"


FLAG_ERRORS = [
    (["--num-partitions", "0"], "--num-partitions: invalid value '0' for num_partitions"),
    (["--limit", "nope=1"], "--limit: unknown key 'limits.nope'"),
    (["--limit", "max_connections"], "--limit: expected NAME=VALUE"),
    (["--limit", "max_connections=many"], "--limit: invalid value 'many' for "
                                           "limits.max_connections"),
    (["--topic-default", "retention.ms=soon"], "--topic-default: invalid value 'soon'"),
    (["--topic-default", "nope=1"], "--topic-default: unknown topic config 'nope'"),
    (["--listen", "nowhere"], "--listen: invalid value 'nowhere' for listen"),
    (["--queue-listen", "h:1:x"], "--queue-listen: invalid value"),
    (["--log-level", "loud"], "--log-level: invalid value 'loud' for log_level"),
]


@pytest.mark.parametrize(("args", "message"), FLAG_ERRORS)
def test_flag_errors_are_one_line_naming_the_option(args, message):
    r = CliRunner().invoke(cli, ["serve", "--print-config", *args])
    _one_line_error(r, message)


def test_a_missing_config_file_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(cli, ["serve", "--config", str(tmp_path / "none.toml")])
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_other_commands_report_config_errors_the_same_way(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("num_partitions = -3\n")
    r = CliRunner().invoke(cli, ["topics", "list", "--config-file", str(f)])
    _one_line_error(r, str(f), "num_partitions")
    r = CliRunner().invoke(cli, ["stats"], env={"LOGMQ_MAP_SIZE": "tiny"})
    _one_line_error(r, "LOGMQ_MAP_SIZE")


def test_memory_data_with_queue_listen_needs_a_key_file():
    r = CliRunner().invoke(cli, ["serve", "--data", ":memory:", "--queue-listen",
                                 "127.0.0.1:0", "--listen", "127.0.0.1:0"])
    _one_line_error(r, "queue_authkey_file: required with data = :memory:")


# ---------------------------------------------------------------------- $LOGMQ_DATA
#: every command with --data, with arguments that make it succeed on the prepared directory
COMMANDS: dict[str, list[str]] = {
    "demo": ["--records", "10", "--partitions", "1"],
    "topics create": ["fresh", "--partitions", "1"],
    "topics list": [],
    "topics describe": ["t"],
    "topics alter": ["t", "--config", "retention.ms=100000"],
    "topics delete": ["doomed"],
    "produce": ["t"],
    "consume": ["t", "--from-beginning", "--max", "1"],
    "replay": ["t"],
    "groups list": [],
    "groups describe": ["g"],
    "groups reset-offsets": ["g", "--topic", "t", "--to-earliest"],
    "groups delete": ["g"],
    "queues list": [],
    "stats": [],
    "compact": [],
    "verify": [],
    "acls add": ["--allow", "User:a", "--operation", "READ", "--topic", "t"],
    "acls list": [],
    "acls remove": ["--principal", "User:a"],
    "acls token add": ["User:a"],
    "acls token list": [],
    "acls token remove": ["User:a"],
    "users add": ["bob", "--password-stdin"],
    "users list": [],
    "users remove": ["carol"],
}


def _commands_with_data(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            out += _commands_with_data(cmd, full + " ")
        elif any(p.name == "data" for p in cmd.params) and name != "serve":
            out.append(full)
    return out


def test_every_command_with_data_is_covered_below():
    assert sorted(_commands_with_data(cli)) == sorted(COMMANDS)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    import logmq

    d = str(tmp_path_factory.mktemp("env") / "data")
    with logmq.open(d, cleaner=False) as log:
        log.create_topic("t")
        log.producer().send("t", b"v", key=b"k").result()
        c = log.consumer("t", group="g", auto_offset_reset="earliest")
        c.poll(timeout=1)
        c.commit()
        c.close(commit=False)
    return d


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_logmq_data_is_honoured_by(command, prepared, tmp_path, monkeypatch):
    import logmq

    if command == "topics delete":
        with logmq.open(prepared, cleaner=False) as log:
            log.create_topic("doomed", exist_ok=True)
    if command.startswith("groups "):
        with logmq.open(prepared, cleaner=False) as log:  # a group with no commits left
            c = log.consumer("t", group="g", auto_offset_reset="earliest")
            c.poll(timeout=1)
            c.commit()
            c.close(commit=False)
    if command == "users remove":
        CliRunner().invoke(cli, ["users", "add", "carol", "--password-stdin", "--data",
                                 prepared], input="pw\n", catch_exceptions=False)
    monkeypatch.chdir(tmp_path)  # ./logmq-data would be the fallback: it must stay absent
    r = CliRunner().invoke(cli, [*command.split(), *COMMANDS[command]],
                           env={"LOGMQ_DATA": prepared}, input="x\n", catch_exceptions=False)
    assert r.exit_code == 0, (command, r.output)
    assert not os.path.exists(tmp_path / "logmq-data")


def test_data_precedence_for_commands(prepared, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "c.toml"
    f.write_text(f'data = "{prepared}"\n')
    r = CliRunner().invoke(cli, ["topics", "list", "--config-file", str(f)])
    assert r.exit_code == 0 and "t" in r.stdout.split(), r.output  # the file's data
    r = CliRunner().invoke(cli, ["topics", "list", "--config-file", str(f)],
                           env={"LOGMQ_DATA": str(tmp_path / "nowhere")})
    assert r.exit_code == 1 and "nowhere" in r.stderr  # env beats the file
    r = CliRunner().invoke(cli, ["topics", "list", "--data", prepared],
                           env={"LOGMQ_DATA": str(tmp_path / "nowhere")})
    assert r.exit_code == 0 and "t" in r.stdout.split()  # the flag beats env


# ---------------------------------------------------------------------- docs
def test_reference_page_is_generated_from_the_table():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_config_docs.py"),
                        "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(ROOT, "docs", "configuration.md")) as fh:
        page = fh.read()
    for key in [*BROKER_KEYS, *LIMIT_KEYS]:
        if key != "limits":
            assert f"`{key}`" in page


def test_reference_page_check_fails_when_stale(tmp_path):
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_config_docs.py"),
                        "--check", "--out", str(stale)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "stale" in r.stderr


def test_the_pages_example_file_loads(tmp_path):
    with open(os.path.join(ROOT, "docs", "configuration.md")) as fh:
        page = fh.read()
    example = page.split("```toml\n", 1)[1].split("```", 1)[0]
    f = tmp_path / "example.toml"
    f.write_text(example)
    cfg = load_broker_config(file=f)
    assert cfg.num_partitions == 3 and cfg.topic_defaults["fsync"] == "always"
    assert server_limits(cfg).api_elements[0] == 50000


# ---------------------------------------------------------------------- serve :memory:
def test_serve_data_memory_serves_and_leaves_nothing(tmp_path):
    ready = tmp_path / "ready"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGMQ_")}
    env["PYTHONPATH"] = ROOT
    proc = subprocess.Popen([sys.executable, "-m", "logmq.cli", "serve", "--data", ":memory:",
                             "--listen", "127.0.0.1:0", "--ready-file", str(ready)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "server not ready"
            time.sleep(0.02)
        client = WireClient(ready.read_text().strip())
        try:
            client.create_topic("m", partitions=1)
            assert client.produce("m", 0, [(b"k", b"v")]) == 0
            assert client.produce("m", 0, [(b"k", b"w")]) == 1
        finally:
            client.close()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    from logmq.storage.memory import memory_root

    assert not [n for n in os.listdir(memory_root()) if n.startswith(f"logmq-mem-{proc.pid}-")]


def test_kafka_style_advertised_listeners_is_advertise(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('advertised_listeners = "PLAINTEXT://kafka.example.com:19092"\n')
    cfg = load_broker_config(file=f)
    assert cfg.advertise == "kafka.example.com:19092"  # the scheme is Kafka's, not ours
    assert cfg.sources["advertise"] == f"file:{f}"
    from logmq.ops.serve_options import split_host_port

    assert split_host_port(cfg.advertise, "advertise", port_optional=True) == (
        "kafka.example.com", 19092)
    assert split_host_port("[::1]", "advertise", port_optional=True) == ("::1", None)
    assert split_host_port("[::1]:9", "advertise", port_optional=True) == ("::1", 9)
