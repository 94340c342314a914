"""SCRAM credentials of SASL users, in the data directory's LMDB (``scram_users`` db).

What is stored is what RFC 5802 lets a server keep: the salt, the iteration count, StoredKey
and ServerKey, per user and mechanism, never the password nor the salted password. That is
also Kafka's model (``kafka-configs --add-config 'SCRAM-SHA-256=[password=...]'`` sends a
salted password the broker reduces the same way), so AlterUserScramCredentials from an
AdminClient and ``logmq users add`` write the same records. SASL/PLAIN is checked against these
records too (the password is salted and iterated with the stored salt and compared with
StoredKey), so there is one credential per user, not a second plaintext table.

The LMDB environment is multi-process safe: ``logmq users add`` on a directory a server is
serving is seen by the next authentication, without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from logmq.broker.names import MAX_USER_NAME_BYTES, utf8_len
from logmq.errors import ConfigError

__all__ = ["ScramCredential", "UserStore", "SCRAM_MECHANISMS", "MECHANISM_CODES",
           "MIN_ITERATIONS", "MAX_ITERATIONS", "DEFAULT_ITERATIONS"]

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
#: the int8 ``mechanism`` of Describe/AlterUserScramCredentials (Kafka's ScramMechanism enum)
MECHANISM_CODES = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
_HASHES = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}
#: Kafka's bounds on SCRAM iterations (ScramMechanism.minIterations, and 16384 at most)
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
DEFAULT_ITERATIONS = 8192
_DB = b"scram_users"


@dataclass(frozen=True)
class ScramCredential:
    mechanism: str
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def auth_info(self) -> tuple[bytes, bytes, bytes, int]:
        """What ``scramp``'s server asks its ``auth_fn`` for."""
        return self.salt, self.stored_key, self.server_key, self.iterations

    def to_json(self) -> bytes:
        b = base64.b64encode
        return json.dumps({"salt": b(self.salt).decode(), "stored_key": b(self.stored_key)
                           .decode(), "server_key": b(self.server_key).decode(),
                           "iterations": self.iterations}).encode()

    @classmethod
    def from_json(cls, mechanism: str, raw: bytes) -> ScramCredential:
        d = json.loads(raw)
        u = base64.b64decode
        return cls(mechanism, u(d["salt"]), u(d["stored_key"]), u(d["server_key"]),
                   int(d["iterations"]))


def _check(user: str, mechanism: str, iterations: int) -> None:
    if not user or "\0" in user:
        raise ConfigError("a user name must not be empty nor contain NUL")
    if utf8_len(user) > MAX_USER_NAME_BYTES:  # user + mechanism is an LMDB key
        raise ConfigError(f"a user name may be at most {MAX_USER_NAME_BYTES} UTF-8 bytes, "
                          f"got {utf8_len(user)}")
    if mechanism not in SCRAM_MECHANISMS:
        raise ConfigError(f"unsupported mechanism {mechanism!r} (one of "
                          f"{', '.join(SCRAM_MECHANISMS)})")
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ConfigError(f"iterations must be {MIN_ITERATIONS}..{MAX_ITERATIONS}, "
                          f"got {iterations}")


def salt_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """RFC 5802's Hi() (PBKDF2-HMAC) of the password's UTF-8 bytes, as Kafka's clients and
    ``kafka-configs`` compute it (no SASLprep, so non-ASCII passwords match theirs)."""
    return hashlib.pbkdf2_hmac(_HASHES[mechanism]().name, password.encode(), salt, iterations)


def keys_from_salted(mechanism: str, salted_password: bytes) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) of a SaltedPassword (RFC 5802 section 3)."""
    h = _HASHES[mechanism]
    client_key = hmac.new(salted_password, b"Client Key", h).digest()
    server_key = hmac.new(salted_password, b"Server Key", h).digest()
    return h(client_key).digest(), server_key


class UserStore:
    """Credentials by (user, mechanism); ``env`` is the data directory's LMDB environment."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.db = env.open_db(_DB)

    @staticmethod
    def _key(user: str, mechanism: str) -> bytes:
        return user.encode() + b"\0" + mechanism.encode()

    def set_password(self, user: str, password: str,
                     mechanisms: Iterable[str] = SCRAM_MECHANISMS,
                     iterations: int = DEFAULT_ITERATIONS) -> None:
        """Salt (fresh random per mechanism) and iterate ``password``; keep only the keys."""
        creds = []
        for mech in mechanisms:
            _check(user, mech, iterations)
            salt = os.urandom(32)
            stored, server = keys_from_salted(mech, salt_password(mech, password, salt,
                                                                  iterations))
            creds.append(ScramCredential(mech, salt, stored, server, iterations))
        self._put(user, creds)

    def set_salted(self, user: str, mechanism: str, salt: bytes, salted_password: bytes,
                   iterations: int) -> None:
        """AlterUserScramCredentials' upsertion: the client salted and iterated already."""
        _check(user, mechanism, iterations)
        if not salt or not salted_password:
            raise ConfigError("salt and salted password must not be empty")
        stored, server = keys_from_salted(mechanism, salted_password)
        self._put(user, [ScramCredential(mechanism, salt, stored, server, iterations)])

    def _put(self, user: str, creds: list[ScramCredential]) -> None:
        with self.env.begin(db=self.db, write=True) as txn:
            for c in creds:
                txn.put(self._key(user, c.mechanism), c.to_json())

    def get(self, user: str, mechanism: str) -> ScramCredential | None:
        with self.env.begin(db=self.db) as txn:
            raw = txn.get(self._key(user, mechanism))
        return None if raw is None else ScramCredential.from_json(mechanism, raw)

    def remove(self, user: str, mechanism: str | None = None) -> int:
        """Delete one mechanism's credential (or all of the user's); how many went."""
        mechs = [mechanism] if mechanism else list(SCRAM_MECHANISMS)
        n = 0
        with self.env.begin(db=self.db, write=True) as txn:
            for m in mechs:
                n += bool(txn.delete(self._key(user, m)))
        return n

    def users(self) -> dict[str, list[tuple[str, int]]]:
        """user -> [(mechanism, iterations)], sorted by user."""
        out: dict[str, list[tuple[str, int]]] = {}
        with self.env.begin(db=self.db) as txn:
            for k, v in txn.cursor():
                user, _, mech = bytes(k).decode().partition("\0")
                out.setdefault(user, []).append((mech, int(json.loads(v)["iterations"])))
        return dict(sorted(out.items()))

    def check_plain(self, user: str, password: str) -> bool:
        """SASL/PLAIN against the stored SCRAM credential (the strongest one the user has).

        Costs one PBKDF2 of ``iterations`` rounds: call it off the event loop.
        """
        for mech in reversed(SCRAM_MECHANISMS):
            cred = self.get(user, mech)
            if cred is None:
                continue
            stored, _ = keys_from_salted(mech, salt_password(mech, password, cred.salt,
                                                             cred.iterations))
            return hmac.compare_digest(stored, cred.stored_key)
        return False
