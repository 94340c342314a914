"""Certificates made in the test (a CA, a server certificate for 127.0.0.1/localhost, client
certificates) and a KafkaServer with several listeners on its own loop in a thread."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import threading
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "logmq tests")]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _write(path: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    with open(path + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(path + ".pem", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


@dataclass
class Pki:
    dir: str
    ca: str
    server_cert: str
    server_key: str

    def client(self, cn: str, ou: str | None = None) -> tuple[str, str]:
        """(certfile, keyfile) of a client certificate signed by the CA."""
        path = os.path.join(self.dir, f"client-{cn}")
        if not os.path.exists(path + ".pem"):
            _sign(self, path, _name(cn, ou), server=False)
        return path + ".pem", path + ".key"


def _sign(pki: Pki, path: str, subject: x509.Name, *, server: bool) -> None:
    with open(pki.ca, "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(pki.dir, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=2)))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    cert = b.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    _write(path, key, cert)


def make_pki(directory: str) -> Pki:
    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = _name("logmq test CA")
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(key, hashes.SHA256()))
    _write(os.path.join(directory, "ca"), key, ca)
    pki = Pki(directory, os.path.join(directory, "ca.pem"),
              os.path.join(directory, "server.pem"), os.path.join(directory, "server.key"))
    _sign(pki, os.path.join(directory, "server"), _name("localhost"), server=True)
    return pki


class SecureServer:
    """A KafkaServer with the given listeners (``["SASL_SSL://127.0.0.1:0", ...]``)."""

    def __init__(self, broker: Any, listen: list[str], pki: Pki | None = None, *,
                 mtls: bool = False, mechanisms: str | None = None,
                 advertise: str | None = None, **limits: int) -> None:
        from logmq.config_load import load_broker_config
        from logmq.server import KafkaServer
        from logmq.server.limits import ServerLimits
        from logmq.server.listeners import listeners_from_config

        kw: dict[str, Any] = {"listen": listen, "allow_insecure": True}
        if pki is not None:
            kw.update(ssl_certfile=pki.server_cert, ssl_keyfile=pki.server_key)
            if mtls:
                kw["ssl_cafile"] = pki.ca
        if mechanisms:
            kw["sasl_mechanisms"] = mechanisms
        if advertise:
            kw["advertise"] = advertise
        cfg = load_broker_config(kw)
        self.auth_events: list[tuple] = []
        limits.setdefault("failed_auth_delay_ms", 0)
        # librdkafka retries a wrong password many times a second: with the default per-IP
        # limit (60 a minute) one client's failures could lock out the next test's clients
        # on the same server; the limit itself is tested in test_sasl_wire.py
        limits.setdefault("auth_failures_per_minute", 1_000_000)
        self.loop = asyncio.new_event_loop()
        self.server = KafkaServer(broker, limits=ServerLimits().replace(**limits),
                                  listeners=listeners_from_config(cfg),
                                  on_auth=lambda *a: self.auth_events.append(a))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run(self.server.start())

    def address(self, name: str) -> str:
        host, port = self.server.addresses[name]
        return f"{host}:{port}"

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self.server.stop(grace=2))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def __enter__(self) -> SecureServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
