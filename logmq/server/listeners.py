"""Kafka-style listeners: ``PROTOCOL://HOST:PORT``, TLS contexts, principals from certificates.

A listener is named by its security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), as
Kafka names them when ``listener.security.protocol.map`` is left alone; a bare ``HOST:PORT`` is
PLAINTEXT, so every address that worked before keeps meaning what it meant. Each listener has
its advertised address, because a client that bootstrapped on the SASL_SSL port must be told to
reconnect to the SASL_SSL port, never to the plaintext one (Kafka returns the endpoint of the
listener the request came in on).

Secure by default: :func:`check_secure` refuses a listener that authenticates nobody
(PLAINTEXT, or SSL without client certificates) on a non-loopback address unless an authorizer
is on or the operator said ``--allow-insecure``: such a port lets anyone who can reach it read,
write and delete every topic.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from logmq.errors import ConfigError
from logmq.server.handlers import Handlers

if TYPE_CHECKING:
    from logmq.config import BrokerConfig

__all__ = ["PROTOCOLS", "Listener", "TlsFiles", "parse_listeners", "apply_advertised",
           "check_secure", "is_loopback", "principal_from_cert", "ADVERTISED",
           "DEFAULT_SASL_MECHANISMS", "parse_mechanisms", "ListenerHandlers",
           "listeners_from_config"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
DEFAULT_SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")

#: the advertised (host, port) of the listener the current connection came in on; each
#: connection is its own asyncio task, so Metadata and FindCoordinator read their own
ADVERTISED: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "logmq_advertised", default=None)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the TLS listeners; ``cafile`` turns on client certificates (mTLS)."""

    certfile: str
    keyfile: str | None = None
    cafile: str | None = None

    def context(self) -> ssl.SSLContext:
        """A server context: TLS 1.2+, the system's default ciphers, required client
        certificates when a CA is given (Kafka's ``ssl.client.auth=required``)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.certfile, self.keyfile)
            if self.cafile:
                ctx.load_verify_locations(cafile=self.cafile)
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"ssl: cannot load {self.certfile}"
                              f"{', ' + self.keyfile if self.keyfile else ''}"
                              f"{', ' + self.cafile if self.cafile else ''}: {e}") from None
        return ctx


@dataclass(frozen=True)
class Listener:
    """One bound port: its protocol, bind and advertised address, TLS context, mechanisms."""

    name: str
    host: str
    port: int
    advertised_host: str | None = None
    advertised_port: int | None = None
    tls: ssl.SSLContext | None = None
    mechanisms: tuple[str, ...] = DEFAULT_SASL_MECHANISMS

    @property
    def uses_tls(self) -> bool:
        return self.name in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.name.startswith("SASL_")

    @property
    def client_certs(self) -> bool:
        return self.tls is not None and self.tls.verify_mode == ssl.CERT_REQUIRED

    def __str__(self) -> str:
        return f"{self.name}://{_join(self.host, self.port)}"


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split(item: str, what: str) -> tuple[str, str, int]:
    name, sep, rest = item.partition("://")
    if not sep:
        name, rest = "PLAINTEXT", item
    name = name.strip().upper()
    if name not in PROTOCOLS:
        raise ConfigError(f"{what}: unknown listener {name!r} in {item!r} (one of "
                          f"{', '.join(PROTOCOLS)})")
    host, sep, port = rest.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what}: expected [PROTOCOL://]HOST:PORT, got {item!r}")
    return name, host.strip("[]"), int(port)


def parse_listeners(text: str | Sequence[str], what: str = "listen") -> list[Listener]:
    """``PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093`` (or a list) -> listeners,
    without TLS contexts yet. Each protocol once, as Kafka requires unique listener names."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    out: list[Listener] = []
    for item in (s for part in items for s in part.split(",") if s.strip()):
        name, host, port = _split(item.strip(), what)
        if any(lst.name == name for lst in out):
            raise ConfigError(f"{what}: listener {name} given twice")
        out.append(Listener(name, host, port))
    if not out:
        raise ConfigError(f"{what}: no listener given")
    return out


def apply_advertised(listeners: list[Listener], advertise: str | None,
                     advertised_host: str | None = None,
                     advertised_port: int | None = None) -> list[Listener]:
    """Set each listener's advertised address.

    ``advertise`` is Kafka's ``advertised.listeners`` (``SASL_SSL://kafka.example.com:9093,
    ...``: each entry for the listener of that name) or logmq's ``HOST[:PORT]``, which is the
    PLAINTEXT listener's (or the only one's); a host alone is advertised on every listener
    with its bound port.
    """
    out = list(listeners)
    if advertise and "://" in advertise:
        for item in advertise.split(","):
            if not item.strip():
                continue
            name, host, port = _split(item.strip(), "advertise")
            idx = [i for i, lst in enumerate(out) if lst.name == name]
            if not idx:
                raise ConfigError(f"advertise: {name} is advertised but not a listener "
                                  f"({', '.join(str(lst) for lst in out)})")
            out[idx[0]] = replace(out[idx[0]], advertised_host=host, advertised_port=port)
        return out
    if advertise:
        ahost, sep, aport = advertise.rpartition(":")
        if sep and aport.isdigit() and "]" not in aport:
            advertised_host, advertised_port = ahost.strip("[]"), int(aport)
        else:
            advertised_host, advertised_port = advertise.strip("[]"), None
    if advertised_host is None and advertised_port is None:
        return out
    first = next((i for i, lst in enumerate(out) if lst.name == "PLAINTEXT"), 0)
    for i, lst in enumerate(out):
        out[i] = replace(lst, advertised_host=advertised_host or lst.advertised_host,
                         advertised_port=advertised_port if i == first else lst.advertised_port)
    return out


def parse_mechanisms(text: str | Sequence[str] | None) -> tuple[str, ...]:
    if text is None:
        return DEFAULT_SASL_MECHANISMS
    items = text.split(",") if isinstance(text, str) else list(text)
    mechs = tuple(dict.fromkeys(m.strip().upper() for m in items if m.strip()))
    bad = [m for m in mechs if m not in SASL_MECHANISMS]
    if bad or not mechs:
        raise ConfigError(f"sasl_mechanisms: unsupported {', '.join(bad) or 'empty list'} "
                          f"(logmq has {', '.join(SASL_MECHANISMS)})")
    return mechs


def is_loopback(host: str) -> bool:
    """True if every address ``host`` resolves to is a loopback one ("" and 0.0.0.0 are not)."""
    if host in ("", "0.0.0.0", "::", "*"):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addrs = {info[4][0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback
                               for a in addrs)


def check_secure(listeners: Sequence[Listener], *, authorizer: bool, allow_insecure: bool,
                 queue_listen: tuple[str, int] | None = None) -> None:
    """Refuse (one-line ConfigError) to expose an unauthenticated port beyond this host."""
    if allow_insecure:
        return
    for lst in listeners:
        open_to_all = lst.name == "PLAINTEXT" or (lst.name == "SSL" and not lst.client_certs)
        if open_to_all and not authorizer and not is_loopback(lst.host):
            how = "PLAINTEXT" if lst.name == "PLAINTEXT" else "SSL without --ssl-cafile"
            raise ConfigError(
                f"refusing to listen on {lst} ({how}, no --authorizer): anyone who can reach "
                "it could read, write and delete every topic; use SASL_SSL:// or mTLS, or "
                "pass --allow-insecure")
    if queue_listen is not None and not is_loopback(queue_listen[0]):
        raise ConfigError(
            f"refusing queue_listen on {_join(*queue_listen)}: the queue port is not "
            "encrypted (its authkey is sent as an HMAC challenge, the jobs in clear); "
            "keep it on loopback or pass --allow-insecure")


def listeners_from_config(cfg: BrokerConfig, *, advertised_host: str | None = None,
                          advertised_port: int | None = None) -> list[Listener]:
    """The listeners of ``cfg`` (``listen``, ``advertise``, ``ssl_*``, ``sasl_mechanisms``),
    TLS contexts loaded, and refused (ConfigError) when insecure: see :func:`check_secure`.
    The ``authorizer`` key belongs to the ACL layer; without it, there is no authorizer."""
    listeners = apply_advertised(parse_listeners(cfg.listen), cfg.advertise,
                                 advertised_host, advertised_port)
    mechs = parse_mechanisms(cfg.sasl_mechanisms)
    tls = None
    if any(lst.uses_tls for lst in listeners):
        if not cfg.ssl_certfile:
            raise ConfigError("ssl_certfile: required by the SSL/SASL_SSL listener "
                              f"({', '.join(str(lst) for lst in listeners if lst.uses_tls)})")
        tls = TlsFiles(cfg.ssl_certfile, cfg.ssl_keyfile, cfg.ssl_cafile).context()
    out = [replace(lst, tls=tls if lst.uses_tls else None, mechanisms=mechs)
           for lst in listeners]
    queue = None
    if cfg.queue_listen:
        qhost, _, qport = cfg.queue_listen.rpartition(":")
        queue = (qhost.strip("[]"), int(qport))
    check_secure(out, authorizer=bool(getattr(cfg, "authorizer", False)),
                 allow_insecure=cfg.allow_insecure, queue_listen=queue)
    return out


#: RFC 4514 short names, as Java's X500Principal.getName() prints them
_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
          "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
          "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID"}


def _escape(value: str) -> str:
    out = "".join("\\" + ch if ch in ',+"\\<>;=' else ch for ch in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def principal_from_cert(cert: dict | None) -> str:
    """``User:CN=alice,OU=eng,O=example`` from a peer certificate, as Kafka's default
    principal builder gives (the subject in RFC 2253 order: most specific first)."""
    if not cert or not cert.get("subject"):
        return "User:ANONYMOUS"
    rdns = []
    for rdn in reversed(cert["subject"]):
        rdns.append("+".join(f"{_SHORT.get(k, k)}={_escape(str(v))}" for k, v in rdn))
    return "User:" + ",".join(rdns)


class ListenerHandlers(Handlers):
    """Handlers whose ``host``/``port`` (what Metadata and FindCoordinator advertise) are those
    of the listener the current request came in on (:data:`ADVERTISED`): a client that
    bootstrapped on the SASL_SSL port must be sent back to it, not to the plaintext one."""

    _default_host: str
    _default_port: int

    @property
    def host(self) -> str:
        adv = ADVERTISED.get()
        return self._default_host if adv is None else adv[0]

    @host.setter
    def host(self, value: str) -> None:
        self._default_host = value

    @property
    def port(self) -> int:
        adv = ADVERTISED.get()
        return self._default_port if adv is None else adv[1]

    @port.setter
    def port(self, value: int) -> None:
        self._default_port = value
