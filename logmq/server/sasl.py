"""SASL on a connection: SaslHandshake (17), SaslAuthenticate (36), KIP-368 re-authentication.

One :class:`SaslSession` per connection of a SASL_PLAINTEXT / SASL_SSL listener. As in Kafka,
until it has authenticated, a connection may only send ApiVersions, SaslHandshake and
SaslAuthenticate: anything else closes it (Kafka's "unexpected Kafka request during SASL
handshake"). SaslHandshake v0 switches to Kafka's original framing (SASL tokens as bare
length-prefixed frames, no request header) for the clients that still use it.

Mechanisms: PLAIN (checked against the stored SCRAM credential, off the event loop: it costs a
PBKDF2), SCRAM-SHA-256 and SCRAM-SHA-512 (the exchange is ``scramp``'s). A failure answers
SASL_AUTHENTICATION_FAILED after ``failed_auth_delay_ms`` (Kafka's
``connection.failed.authentication.delay.ms``) and closes the connection; it is logged with the
peer address (rate-limited) and counted per IP: beyond ``auth_failures_per_minute`` failures
from one address, its attempts are refused without looking at the credentials until the minute
has passed, so a password cannot be guessed at line rate.

KIP-368: with ``connections_max_reauth_ms`` set, SaslAuthenticate v1+ answers the session
lifetime, the client re-authenticates on the same connection before it ends (same mechanism,
same principal), and a connection whose session expired is closed at its next request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import scramp

from logmq.kafka_codes import ErrorCode
from logmq.server.guard import RateLimitedLog

if TYPE_CHECKING:
    from logmq.broker.users import UserStore

__all__ = ["SaslSession", "SaslContext", "AuthFailureLimiter", "sasl_request",
           "raw_sasl_token", "SASL_HANDSHAKE", "SASL_AUTHENTICATE",
           "illegal_state_response"]

log = logging.getLogger("logmq.server.auth")
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
_API_VERSIONS = 18
_BEFORE_AUTH = frozenset((_API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE))
_FAILED = int(ErrorCode.SASL_AUTHENTICATION_FAILED)
_ILLEGAL = int(ErrorCode.ILLEGAL_SASL_STATE)
_UNSUPPORTED = int(ErrorCode.UNSUPPORTED_SASL_MECHANISM)


def illegal_state_response(api: int) -> dict:
    """What a listener without SASL answers to SaslHandshake/SaslAuthenticate (Kafka's
    KafkaApis does the same: the request is legal, the state is not)."""
    if api == SASL_HANDSHAKE:
        return {"error_code": _ILLEGAL, "mechanisms": []}
    return {"error_code": _ILLEGAL, "error_message": "this listener does not use SASL",
            "auth_bytes": b"", "session_lifetime_ms": 0}


class AuthFailureLimiter:
    """Failed authentications per IP address in the last minute (bounded memory)."""

    def __init__(self, per_minute: int, max_addresses: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, ip: str, now: float) -> deque[float] | None:
        q = self._seen.get(ip)
        if q is not None:
            while q and now - q[0] > 60.0:
                q.popleft()
        return q

    def blocked(self, ip: str, now: float | None = None) -> bool:
        q = self._recent(ip, time.monotonic() if now is None else now)
        return q is not None and len(q) >= self.per_minute

    def failed(self, ip: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        q = self._recent(ip, now)
        if q is None:
            q = self._seen[ip] = deque(maxlen=max(1, self.per_minute))
            while len(self._seen) > self.max_addresses:
                self._seen.popitem(last=False)
        self._seen.move_to_end(ip)
        q.append(now)


class AuthFailed(Exception):
    """Credentials refused; the message is what the client is told."""


class _Plain:
    """RFC 4616: one token ``authzid NUL authcid NUL password``."""

    def __init__(self, users: UserStore) -> None:
        self.users = users
        self.user: str | None = None

    async def step(self, token: bytes) -> tuple[bytes, bool]:
        parts = token.split(b"\0")
        bad = AuthFailed("Authentication failed: Invalid username or password")
        if len(parts) != 3:
            raise AuthFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        try:
            authzid, user, password = (p.decode() for p in parts)
        except UnicodeDecodeError:
            raise bad from None
        if not user or not password:
            raise bad
        if authzid and authzid != user:
            raise AuthFailed("Authentication failed: Client requested an authorization id "
                             "that is different from username")
        if not await asyncio.to_thread(self.users.check_plain, user, password):
            self.user = user
            raise bad
        self.user = user
        return b"", True


class _Scram:
    """RFC 5802 in two round trips; ``scramp`` checks the proof against StoredKey.

    The client-final nonce must equal the combined one, as Kafka 4.4 checks it: librdkafka
    2.0 (kcat 1.7 on Debian 12) repeats its own nonce in front and is refused by both."""

    def __init__(self, mechanism: str, users: UserStore) -> None:
        self.mechanism = mechanism
        self.users = users
        self.user: str | None = None
        self._server = scramp.ScramMechanism(mechanism).make_server(self._auth_info)
        self._step = 0

    def _auth_info(self, user: str) -> tuple[bytes, bytes, bytes, int]:
        self.user = user
        cred = self.users.get(user, self.mechanism)
        if cred is None:
            raise scramp.ScramException("unknown user")
        return cred.auth_info()

    async def step(self, token: bytes) -> tuple[bytes, bool]:
        bad = AuthFailed("Authentication failed during authentication due to invalid "
                         f"credentials with SASL mechanism {self.mechanism}")
        try:
            text = token.decode()
            if self._step == 0:
                self._step = 1
                self._server.set_client_first(text)
                return self._server.get_server_first().encode(), False
            if self._step == 1:
                self._step = 2
                self._server.set_client_final(text)
                return self._server.get_server_final().encode(), True
        except Exception:  # scramp's errors and anything a hostile token provokes in it
            raise bad from None
        raise bad


class SaslContext:
    """What every connection of a server shares: credentials, failure counts, the log, and
    ``on_result(host, port, principal_or_user, mechanism, ok, message)`` for an audit log."""

    def __init__(self, users: UserStore, *, failures_per_minute: int = 60,
                 reauth_ms: int = 0, failure_delay_ms: int = 100, log_per_minute: int = 60,
                 on_result: Callable[[str, int, str | None, str | None, bool, str], None]
                 | None = None) -> None:
        self.users = users
        self.limiter = AuthFailureLimiter(failures_per_minute)
        self.reauth_ms = reauth_ms
        self.failure_delay_ms = failure_delay_ms
        self.log = RateLimitedLog(log, log_per_minute)
        self.on_result = on_result


class SaslSession:
    """The SASL state of one connection (see the module docstring)."""

    def __init__(self, ctx: SaslContext, mechanisms: tuple[str, ...], host: str,
                 port: int) -> None:
        self.ctx = ctx
        self.mechanisms = mechanisms
        self.users = ctx.users
        self.limiter = ctx.limiter
        self.host, self.port = host, port
        self.reauth_ms = ctx.reauth_ms
        self.failure_delay_ms = ctx.failure_delay_ms
        self.principal: str | None = None
        self.mechanism: str | None = None  # of the first authentication (re-auth keeps it)
        self.expires_at: float | None = None
        self.raw = False  # SaslHandshake v0: tokens as bare frames until done
        self._exchange: _Plain | _Scram | None = None
        self._pending: str | None = None  # mechanism of the exchange in progress

    @property
    def authenticated(self) -> bool:
        return self.principal is not None

    def refuse(self, api: int, now: float) -> str | None:
        """Why this request closes the connection (None: go on)."""
        if api in (SASL_HANDSHAKE, SASL_AUTHENTICATE):
            return None
        if not self.authenticated:
            return None if api == _API_VERSIONS else "unauthenticated"
        if self.expires_at is not None and now > self.expires_at and self._pending is None:
            return "session_expired"
        return None

    def handshake(self, mechanism: str, version: int) -> tuple[dict, bool]:
        """The SaslHandshake response and whether to close after it."""
        body = {"error_code": 0, "mechanisms": list(self.mechanisms)}
        if self._pending is not None:
            body["error_code"] = _ILLEGAL
            return body, True
        if mechanism not in self.mechanisms:
            body["error_code"] = _UNSUPPORTED
            return body, True
        if self.authenticated:  # KIP-368 re-authentication
            if version < 1 or mechanism != self.mechanism:
                body["error_code"] = _ILLEGAL if version < 1 else _UNSUPPORTED
                return body, True
        self._pending = mechanism
        self._exchange = (_Plain(self.users) if mechanism == "PLAIN"
                          else _Scram(mechanism, self.users))
        self.raw = version == 0
        return body, False

    async def authenticate(self, token: bytes, version: int) -> tuple[dict, bool]:
        """The SaslAuthenticate response (``auth_bytes`` for v0 framing) and whether to close."""
        body: dict[str, Any] = {"error_code": 0, "error_message": None, "auth_bytes": b"",
                                "session_lifetime_ms": 0}
        if self._exchange is None:
            body.update(error_code=_ILLEGAL, error_message="SaslAuthenticate without a "
                        "SaslHandshake first")
            return body, True
        if self.limiter.blocked(self.host):
            return await self._fail(body, None, f"too many failed authentications from "
                                    f"{self.host}; retry later", count=False)
        try:
            reply, done = await self._exchange.step(token)
        except AuthFailed as e:
            return await self._fail(body, self._exchange.user, str(e))
        body["auth_bytes"] = reply
        if not done:
            return body, False
        user = self._exchange.user
        principal = f"User:{user}"
        if self.principal is not None and principal != self.principal:
            return await self._fail(body, user, "Cannot change principals during "
                                    f"re-authentication from {self.principal}: {principal}")
        first = self.principal is None
        self.principal, self.mechanism = principal, self._pending
        self._exchange, self._pending, self.raw = None, None, False
        if self.reauth_ms > 0:
            self.expires_at = time.monotonic() + self.reauth_ms / 1000
            body["session_lifetime_ms"] = self.reauth_ms if version >= 1 else 0
        log.debug("%s %s %s from %s:%d", principal, "authenticated" if first else
                  "re-authenticated", self.mechanism, self.host, self.port)
        if self.ctx.on_result is not None:
            self.ctx.on_result(self.host, self.port, principal, self.mechanism, True,
                               "authenticated" if first else "re-authenticated")
        return body, False

    async def _fail(self, body: dict, user: str | None, message: str,
                    count: bool = True) -> tuple[dict, bool]:
        if count:
            self.limiter.failed(self.host)
        self.ctx.log.log(logging.WARNING, "authentication failure",
                         "authentication failed from %s:%d (%s, user %r): %s", self.host,
                         self.port, self._pending, user, message)
        if self.ctx.on_result is not None:
            self.ctx.on_result(self.host, self.port, user, self._pending, False, message)
        self._exchange, self._pending = None, None
        if self.failure_delay_ms > 0:  # Kafka's connection.failed.authentication.delay.ms
            await asyncio.sleep(self.failure_delay_ms / 1000)
        body.update(error_code=_FAILED, error_message=message, auth_bytes=b"")
        return body, True


async def sasl_request(sess: SaslSession | None, api: int, version: int, body: dict,
                       client: Any) -> tuple[dict, bool]:
    """A SaslHandshake/SaslAuthenticate response and whether to close after sending it; a
    successful authentication sets ``client.principal`` (what authorization keys on)."""
    if sess is None:
        return illegal_state_response(api), False
    if api == SASL_HANDSHAKE:
        return sess.handshake(body["mechanism"], version)
    out, close = await sess.authenticate(body["auth_bytes"] or b"", version)
    if sess.principal is not None and not close:
        client.principal = sess.principal
    return out, close


async def raw_sasl_token(frame: bytes, writer: asyncio.StreamWriter, conn: Any) -> bool:
    """SaslHandshake v0's framing: the token is the whole frame, and so is the answer.
    False closes the connection (v0 has no way to send an error: Kafka closes)."""
    sess: SaslSession = conn.sasl
    out, close = await sess.authenticate(frame, 0)
    if close:
        return False
    if sess.principal is not None:
        conn.principal = sess.principal
    token = out["auth_bytes"]
    writer.write(len(token).to_bytes(4, "big") + token)
    await writer.drain()
    return True
