"""A real Apache Kafka broker (KRaft) as the test oracle for logmq.

Why: logmq claims wire compatibility; the only trustworthy answer to "what does Kafka do here"
is Kafka itself. There is no Kafka tarball on the registries this project may use, but Maven
Central has every jar of the release, so we assemble the broker's classpath from there
(``tools/oracle/pom.xml`` + ``mvn dependency:copy-dependencies``), format a KRaft log directory
with ``kafka.tools.StorageTool`` and run ``kafka.Kafka server.properties`` exactly as Kafka's
``bin/kafka-storage.sh`` / ``bin/kafka-server-start.sh`` do (they only build a classpath and
call ``java``).

Usage::

    python tools/kafka_oracle.py fetch                 # jars into the cache (idempotent)
    python tools/kafka_oracle.py start [--brokers 3]   # prints the bootstrap, leaves it running
    python tools/kafka_oracle.py stop
    python tools/kafka_oracle.py run-cli kafka-topics --bootstrap-server ... --list

Everything binds to 127.0.0.1 on ports the OS says are free; heaps are small (-Xmx512m).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

KAFKA_VERSION = "4.4.0"
HERE = Path(__file__).resolve().parent
POM = HERE / "oracle" / "pom.xml"
LOG4J = HERE / "oracle" / "log4j2.properties"
#: Kafka 4.x brokers and tools are compiled for Java 17 (class file 61), clients for 11.
MIN_JAVA = 17
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0

#: bin/kafka-*.sh name -> the main class the script hands to kafka-run-class.sh
CLI_TOOLS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-leader-election": "org.apache.kafka.tools.LeaderElectionCommand",
    "kafka-storage": "kafka.tools.StorageTool",
}


class OracleError(RuntimeError):
    """The oracle could not be assembled, started or stopped (message says which and why)."""


def cache_dir() -> Path:
    base = os.environ.get("LOGMQ_ORACLE_CACHE") or os.path.expanduser("~/.cache/logmq-oracle")
    return Path(base) / f"kafka-{KAFKA_VERSION}"


def libs_dir() -> Path:
    return cache_dir() / "libs"


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def fetch(quiet: bool = True) -> Path:
    """Copy the broker + tools classpath into the cache; a no-op when the pom is unchanged."""
    libs = libs_dir()
    stamp = libs / ".pom-sha256"
    if stamp.exists() and stamp.read_text().strip() == _pom_digest():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise OracleError("mvn not found: install Maven (Debian package 'maven')")
    tmp = libs.with_name("libs.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [mvn, "-B", *(["-q"] if quiet else []), "-f", str(POM),
           "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise OracleError("maven failed:\n" + proc.stdout[-4000:] + proc.stderr[-4000:])
    (tmp / ".pom-sha256").write_text(_pom_digest())
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs


def java_exe() -> str:
    """JAVA_HOME's java if set, else the one on PATH; checked against MIN_JAVA."""
    home = os.environ.get("JAVA_HOME")
    exe = str(Path(home) / "bin" / "java") if home else (shutil.which("java") or "")
    if not exe or not os.path.exists(exe):
        raise OracleError(f"no java found: Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+")
    out = subprocess.run([exe, "-XshowSettings:properties", "-version"],
                         capture_output=True, text=True).stderr
    for line in out.splitlines():
        if "java.specification.version" in line:
            major = int(line.split("=")[1].strip().split(".")[0])
            if major < MIN_JAVA:
                raise OracleError(f"{exe} is Java {major}; Kafka {KAFKA_VERSION} needs "
                                  f"{MIN_JAVA}+ (set JAVA_HOME)")
    return exe


def classpath() -> str:
    return str(fetch() / "*")


def java_cmd(main: str, *args: str, heap: str = "-Xmx512m", short_lived: bool = False,
             log_dir: str | None = None) -> list[str]:
    """The java command line kafka-run-class.sh would build for ``main``."""
    opts = [heap, "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.dir={log_dir or tempfile.gettempdir()}"]
    if short_lived:  # CLI tools: start fast, they run for a second or two
        opts += ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]
    return [java_exe(), *opts, "-cp", classpath(), main, *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def random_cluster_id() -> str:
    """Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding; like Kafka's
    Uuid.randomUuid, never one starting with '-' (a command line would read it as an option)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


# --- a minimal Kafka client, only to know when the broker really serves requests ----------

def _request(sock: socket.socket, api: int, version: int, body: bytes) -> bytes:
    client_id = b"logmq-oracle"
    header = struct.pack(">hhih", api, version, 1, len(client_id)) + client_id
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", _recv(sock, 4))[0]
    return _recv(sock, size)[4:]  # drop the correlation id


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def probe(host: str, port: int, timeout: float = 5.0) -> int:
    """Number of live brokers in Metadata, after an ApiVersions that answered without error.

    Raises OSError/ConnectionError while the broker is not serving yet."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        resp = _request(s, 18, 0, b"")  # ApiVersions v0
        if struct.unpack(">h", resp[:2])[0] != 0:
            raise ConnectionError("ApiVersions error")
        resp = _request(s, 3, 1, struct.pack(">i", 0))  # Metadata v1, no topics
        return int(struct.unpack(">i", resp[:4])[0])


class KafkaCluster:
    """One or more combined broker+controller KRaft nodes on loopback ports."""

    def __init__(self, workdir: str | os.PathLike[str] | None = None, brokers: int = 1,
                 extra_config: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kafka-oracle-"))
        self.brokers = brokers
        self.extra = dict(extra_config or {})
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.controller_ports: list[int] = []

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def _properties(self, node: int) -> str:
        # node ids from 0, as logmq's single node is 0: tools print the same Leader/Replicas
        voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in enumerate(self.controller_ports))
        rf = str(min(3, self.brokers))
        conf = {
            "process.roles": "broker,controller",
            "node.id": str(node),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.ports[node]},"
                         f"CONTROLLER://127.0.0.1:{self.controller_ports[node]}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.ports[node]}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.workdir / f"node{node + 1}" / "data"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "1" if self.brokers == 1 else "3",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": "1",
            # tests join groups constantly; Kafka's 3 s initial delay only slows them down
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
        }
        conf.update(self.extra)
        return "".join(f"{k}={v}\n" for k, v in conf.items())

    def start(self, timeout: float = START_TIMEOUT_S) -> KafkaCluster:
        fetch()
        self.ports = [free_port() for _ in range(self.brokers)]
        self.controller_ports = [free_port() for _ in range(self.brokers)]
        cluster_id = random_cluster_id()
        for node in range(self.brokers):
            ndir = self.workdir / f"node{node + 1}"
            ndir.mkdir(parents=True, exist_ok=True)
            props = ndir / "server.properties"
            props.write_text(self._properties(node))
            fmt = subprocess.run(
                java_cmd("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                         f"--config={props}",
                         "--ignore-formatted", short_lived=True, heap="-Xmx256m",
                         log_dir=str(ndir)),
                capture_output=True, text=True, timeout=120)
            if fmt.returncode != 0:
                raise OracleError(f"kafka-storage format failed:\n{fmt.stdout}{fmt.stderr}")
        for node in range(self.brokers):
            ndir = self.workdir / f"node{node + 1}"
            with open(ndir / "server.out", "wb") as out:
                self.procs.append(subprocess.Popen(
                    java_cmd("kafka.Kafka", str(ndir / "server.properties"), log_dir=str(ndir)),
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True))
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll every broker until Metadata lists all of them (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        pending = set(range(self.brokers))
        while pending:
            for node in sorted(pending):
                proc = self.procs[node]
                if proc.poll() is not None:
                    raise OracleError(f"broker {node + 1} exited with {proc.returncode}:\n"
                                      + self.log_tail(node))
                try:
                    if probe("127.0.0.1", self.ports[node]) >= self.brokers:
                        pending.discard(node)
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                raise OracleError(f"broker(s) {sorted(n + 1 for n in pending)} not ready in "
                                  f"{timeout:.0f}s:\n" + self.log_tail(min(pending)))
            if pending:
                time.sleep(0.25)  # polling interval of a bounded readiness wait

    def log_tail(self, node: int, nbytes: int = 4000) -> str:
        path = self.workdir / f"node{node + 1}" / "server.out"
        try:
            return path.read_bytes()[-nbytes:].decode(errors="replace")
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (Kafka's controlled shutdown), SIGKILL only if that overruns ``timeout``."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.procs = []

    def state(self) -> dict[str, object]:
        return {"workdir": str(self.workdir), "bootstrap": self.bootstrap,
                "pids": [p.pid for p in self.procs]}

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_cli(tool: str, args: Sequence[str], timeout: float = 120.0,
            check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run one of Kafka's CLI tools (by its bin/ script name) and capture what it prints."""
    try:
        main = CLI_TOOLS[tool.removesuffix(".sh")]
    except KeyError:
        raise OracleError(f"unknown tool {tool!r}; known: {', '.join(sorted(CLI_TOOLS))}") from None
    proc = subprocess.run(java_cmd(main, *args, heap="-Xmx256m", short_lived=True),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise OracleError(f"{tool} {' '.join(args)} exited {proc.returncode}:\n"
                          f"{proc.stdout}{proc.stderr}")
    return proc


# --- the command line ---------------------------------------------------------------------

def _state_file() -> Path:
    return cache_dir() / "running.json"


def _cmd_start(ns: argparse.Namespace) -> int:
    sf = _state_file()
    if sf.exists():
        print(f"already running (see {sf}); stop it first", file=sys.stderr)
        return 1
    cluster = KafkaCluster(ns.workdir, brokers=ns.brokers).start()
    sf.write_text(json.dumps(cluster.state()))
    print(cluster.bootstrap)
    return 0


def _cmd_stop(ns: argparse.Namespace) -> int:
    sf = _state_file()
    if not sf.exists():
        print("not running", file=sys.stderr)
        return 0
    st = json.loads(sf.read_text())
    pids = [int(p) for p in st["pids"]]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for pid in pids:
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)  # bounded wait for a process that is not our child
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    sf.unlink()
    if not ns.keep:
        shutil.rmtree(st["workdir"], ignore_errors=True)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="assemble the Kafka classpath from Maven Central")
    f.add_argument("--verbose", action="store_true")
    s = sub.add_parser("start", help="format and start a KRaft cluster; prints the bootstrap")
    s.add_argument("--brokers", type=int, default=1)
    s.add_argument("--workdir", default=None)
    t = sub.add_parser("stop", help="stop the cluster 'start' left running")
    t.add_argument("--keep", action="store_true", help="keep its data directory")
    r = sub.add_parser("run-cli", help="run a Kafka CLI tool, e.g. kafka-topics --list ...")
    r.add_argument("tool", choices=sorted(CLI_TOOLS))
    r.add_argument("args", nargs=argparse.REMAINDER)
    ns = ap.parse_args(argv)
    try:
        if ns.cmd == "fetch":
            print(fetch(quiet=not ns.verbose))
            return 0
        if ns.cmd == "start":
            return _cmd_start(ns)
        if ns.cmd == "stop":
            return _cmd_stop(ns)
        proc = run_cli(ns.tool, ns.args)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        return proc.returncode
    except OracleError as e:
        print(f"kafka_oracle: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
