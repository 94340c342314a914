"""SASL_SSL against Apache Kafka 4.4 and against ``logmq serve``: the same observable answers.

Both brokers get a PLAINTEXT and a SASL_SSL listener with the same PEM certificate (made here)
and SCRAM-SHA-256/512 users created the way an operator does it on Kafka: ``kafka-configs
--alter --add-config 'SCRAM-SHA-256=[...]' --entity-type users`` over the plaintext port (for
logmq that is its AlterUserScramCredentials). Then every client tries the right and a wrong
password: the right one produces and consumes, the wrong one fails with the authentication
error, on both; a plaintext client on the TLS port gets no Kafka answer from either.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_oracle import KafkaCluster, free_port, run_cli
from server_util import ServerProcess

from logmq.protocol import encode_request
from tests.tls_util import Pki, make_pki

from .conftest import record_result

pytestmark = pytest.mark.oracle

USER, PASSWORD = "alice", "wonder-land"
MECHS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
#: librdkafka 2.0.2 (kcat 1.7.1, Debian 12) repeats its nonce in SCRAM's client-final
#: message: Kafka 4.4 refuses even the right password, and so does logmq
KCAT_SCRAM = {"right": "authentication failed", "wrong": "authentication failed"}


class SaslKafka(KafkaCluster):
    """One KRaft node with a SASL_SSL listener beside the PLAINTEXT one."""

    def __init__(self, workdir: Path, pki: Pki) -> None:
        super().__init__(workdir)
        self.sasl_port = free_port()
        keystore = workdir / "server-keystore.pem"  # Kafka's PEM keystore: key + chain
        keystore.write_text(Path(pki.server_key).read_text() + Path(pki.server_cert).read_text())
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        self.extra = {
            "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
            # Kafka's PLAIN checks JAAS users; logmq's checks the SCRAM credential
            "listener.name.sasl_ssl.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'user_{USER}="{PASSWORD}";',
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
        }

    def _properties(self, node: int) -> str:
        text = super()._properties(node)
        port = self.ports[node]
        text = text.replace(f"listeners=PLAINTEXT://127.0.0.1:{port},",
                            f"listeners=PLAINTEXT://127.0.0.1:{port},"
                            f"SASL_SSL://127.0.0.1:{self.sasl_port},")
        text = text.replace(f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n",
                            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},"
                            f"SASL_SSL://127.0.0.1:{self.sasl_port}\n")
        return text.replace("listener.security.protocol.map=PLAINTEXT:PLAINTEXT,",
                            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,"
                            "SASL_SSL:SASL_SSL,")


def _add_users(plain_bootstrap: str) -> None:
    for mech in MECHS:
        run_cli("kafka-configs", ["--bootstrap-server", plain_bootstrap, "--alter",
                                  "--add-config", f"{mech}=[iterations=4096,password={PASSWORD}]",
                                  "--entity-type", "users", "--entity-name", USER], check=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(str(tmp_path_factory.mktemp("sasl-pki")))


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[dict[str, str]]:
    kafka = SaslKafka(tmp_path_factory.mktemp("kafka-sasl"), pki).start()
    srv = ServerProcess(str(tmp_path_factory.mktemp("logmq-sasl") / "d"),
                        "--listen", "SASL_SSL://127.0.0.1:0", "--ssl-certfile", pki.server_cert,
                        "--ssl-keyfile", pki.server_key,
                        "--sasl-mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
                        # deliberate: logmq refuses an IP after 60 failures a minute, Kafka
                        # never; librdkafka retries a wrong password that often here
                        "--limit", "auth_failures_per_minute=100000")
    try:
        srv.start()
        deadline = time.monotonic() + 30
        sasl_port = None
        while sasl_port is None and time.monotonic() < deadline:  # the drain thread's lines
            for line in list(srv.lines):
                m = re.search(r"listening on [\d.]+:(\d+) \(SASL_SSL;", line)
                if m:
                    sasl_port = int(m.group(1))
            time.sleep(0.05)
        assert sasl_port is not None, "".join(srv.lines)
        _add_users(kafka.bootstrap)
        _add_users(srv.bootstrap)
        yield {"kafka": f"127.0.0.1:{kafka.sasl_port}", "logmq": f"127.0.0.1:{sasl_port}"}
    finally:
        srv.stop()
        kafka.stop()


def _confluent(bootstrap: str, pki: Pki, mech: str, password: str, topic: str) -> str:
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic

    conf = {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL",
            "sasl.mechanisms": mech, "sasl.username": USER, "sasl.password": password,
            "ssl.ca.location": pki.ca}
    errors: list = []
    p = ck.Producer({**conf, "error_cb": errors.append})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not errors:
        try:
            p.list_topics(timeout=1)
            break
        except ck.KafkaException:
            p.poll(0.1)  # serves error_cb
    if errors:
        return ("authentication failed" if errors[0].code() == ck.KafkaError._AUTHENTICATION
                else f"error {errors[0].name()}")
    admin = AdminClient(conf)
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(15)
    p = ck.Producer(conf)
    p.produce(topic, b"v")
    if p.flush(15):
        return "produce timed out"
    c = ck.Consumer({**conf, "group.id": topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                return "ok" if m.value() == b"v" else "wrong record"
    finally:
        c.close()
    return "consume timed out"


def _kafka_python(bootstrap: str, pki: Pki, mech: str, password: str, topic: str) -> str:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaTimeoutError

    kw = dict(bootstrap_servers=bootstrap, security_protocol="SASL_SSL", sasl_mechanism=mech,
              sasl_plain_username=USER, sasl_plain_password=password, ssl_cafile=pki.ca,
              bootstrap_timeout_ms=5000)
    try:
        p = KafkaProducer(**kw)
    except KafkaTimeoutError:
        return "authentication failed"
    p.send(topic, b"v").get(30)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=20_000, **kw)
    try:
        return "ok" if next(iter(c)).value == b"v" else "wrong record"
    finally:
        c.close()


def _aiokafka(bootstrap: str, pki: Pki, mech: str, password: str, topic: str) -> str:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError
    from aiokafka.helpers import create_ssl_context

    kw = dict(bootstrap_servers=bootstrap, security_protocol="SASL_SSL", sasl_mechanism=mech,
              sasl_plain_username=USER, sasl_plain_password=password,
              ssl_context=create_ssl_context(cafile=pki.ca))

    async def main() -> str:
        p = AIOKafkaProducer(**kw)
        try:
            await p.start()
        except KafkaConnectionError:
            await p.stop()
            return "authentication failed"
        try:
            await p.send_and_wait(topic, b"v")
        finally:
            await p.stop()
        c = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **kw)
        await c.start()
        try:
            m = await asyncio.wait_for(c.getone(), 30)
            return "ok" if m.value == b"v" else "wrong record"
        finally:
            await c.stop()

    return asyncio.run(main())


def _kcat(bootstrap: str, pki: Pki, mech: str, password: str, topic: str) -> str:
    import subprocess

    base = ["kcat", "-b", bootstrap, "-X", "security.protocol=SASL_SSL", "-X",
            f"sasl.mechanisms={mech}", "-X", f"sasl.username={USER}", "-X",
            f"sasl.password={password}", "-X", f"ssl.ca.location={pki.ca}"]
    r = subprocess.run([*base, "-L", "-m", "10"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return ("authentication failed" if "uthentication" in r.stderr
                else f"error {r.stderr[-200:]}")
    r = subprocess.run([*base, "-P", "-t", topic], input="v\n", capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        return f"produce error {r.stderr[-200:]}"
    r = subprocess.run([*base, "-C", "-t", topic, "-o", "beginning", "-c", "1", "-e"],
                       capture_output=True, text=True, timeout=60)
    return "ok" if r.stdout.split() == ["v"] else f"consume {r.stdout!r} {r.stderr[-200:]}"


GO_SCENARIO = Path(__file__).resolve().parents[2] / "interop" / "go" / "bin" / "scenario"


def _franz(bootstrap: str, pki: Pki, mech: str, password: str, topic: str) -> str:
    import json
    import os
    import subprocess

    if not GO_SCENARIO.exists():
        if os.environ.get("CI"):
            raise AssertionError("interop/go/bin/scenario missing (.ci/step-oracle.sh builds it)")
        pytest.skip("build interop/go first: cd interop/go && go build -o bin/scenario .")
    r = subprocess.run([str(GO_SCENARIO), "--client", "franz-go", "--scenario", "auth",
                        "--bootstrap", bootstrap, "--prefix", topic, "--sasl-mechanism", mech,
                        "--user", USER, "--password", password, "--cafile", pki.ca],
                       capture_output=True, text=True, timeout=90)
    return str(json.loads(r.stdout.strip().splitlines()[-1])["auth"])


JS_DIR = Path(__file__).resolve().parents[2] / "interop" / "js"


def _kafkajs(bootstrap: str, pki: Pki, mech: str, password: str, topic: str) -> str:
    import json
    import os
    import subprocess

    if not (JS_DIR / "node_modules" / "kafkajs").exists():
        if os.environ.get("CI"):
            raise AssertionError("interop/js/node_modules missing (.ci/step-oracle.sh runs "
                                 "npm ci)")
        pytest.skip("cd interop/js && npm ci")
    r = subprocess.run(["node", "scenario.js", "--scenario", "auth", "--bootstrap", bootstrap,
                        "--prefix", topic, "--sasl-mechanism", mech, "--user", USER,
                        "--password", password, "--cafile", pki.ca],
                       cwd=JS_DIR, capture_output=True, text=True, timeout=90)
    return str(json.loads(r.stdout.strip().splitlines()[-1])["auth"])


JAVA_DIR = Path(__file__).resolve().parents[2] / "interop" / "java"


def _java(bootstrap: str, pki: Pki, mech: str, password: str, topic: str) -> str:
    import json
    import os
    import subprocess

    if not (JAVA_DIR / "target" / "classes" / "Auth.class").exists():
        if os.environ.get("CI"):
            raise AssertionError("interop/java not built (.ci/step-oracle.sh runs mvn package)")
        pytest.skip("mvn -q -B -f interop/java/pom.xml package -DskipTests")
    r = subprocess.run(["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp",
                        f"target/classes{os.pathsep}target/lib/*", "Auth", "--bootstrap",
                        bootstrap, "--prefix", topic, "--sasl-mechanism", mech, "--user", USER,
                        "--password", password, "--cafile", pki.ca],
                       cwd=JAVA_DIR, capture_output=True, text=True, timeout=120)
    return str(json.loads(r.stdout.strip().splitlines()[-1])["auth"])


CLIENTS = {"confluent-kafka": _confluent, "kafka-python": _kafka_python,
           "aiokafka": _aiokafka, "kcat": _kcat, "franz-go": _franz, "kafkajs": _kafkajs,
           "java": _java}


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("mech", [*MECHS, "PLAIN"])
def test_right_and_wrong_password_alike(brokers, pki, client, mech):
    outcomes = {}
    for name, bootstrap in sorted(brokers.items()):
        topic = f"sasl-{client}-{mech}".lower().replace("_", "-")
        outcomes[name] = {
            "right": CLIENTS[client](bootstrap, pki, mech, PASSWORD, topic),
            "wrong": CLIENTS[client](bootstrap, pki, mech, "not-" + PASSWORD, topic + "-x"),
        }
    want = {"right": "ok", "wrong": "authentication failed"}
    if client == "kcat" and mech != "PLAIN":
        want = KCAT_SCRAM
    record_result(client, f"sasl_ssl_{mech.lower()}", {
        "kafka": outcomes["kafka"], "logmq": outcomes["logmq"],
        "same": outcomes["kafka"] == outcomes["logmq"], "kafka_ok": outcomes["kafka"] == want})
    assert outcomes["kafka"] == want
    assert outcomes["logmq"] == outcomes["kafka"]


def test_plaintext_client_on_the_tls_port_alike(brokers):
    seen = {}
    for name, bootstrap in brokers.items():
        host, port = bootstrap.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(encode_request(18, 2, 1, "plain", {}))
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except (TimeoutError, ConnectionError):
                pass
        seen[name] = "nothing" if data == b"" else "tls alert" if data[0] == 0x15 else "data"
    assert seen["kafka"] in ("nothing", "tls alert")
    assert seen["logmq"] in ("nothing", "tls alert")
