"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51).

So ``kafka-configs --alter --add-config 'SCRAM-SHA-256=[iterations=8192,password=...]'
--entity-type users --entity-name alice`` and AdminClient's ``alter_user_scram_credentials``
manage the same credentials as ``logmq users``. The client sends a salt and the salted
password, never the password; the broker keeps StoredKey and ServerKey (logmq.broker.users).
Error codes and messages follow Kafka's (RESOURCE_NOT_FOUND for an unknown user or a deletion
of nothing, DUPLICATE_RESOURCE for a user named twice in one request, UNACCEPTABLE_CREDENTIAL
for iterations out of bounds or an empty name, UNSUPPORTED_SASL_MECHANISM for mechanism 0).
Who may call them is the authorizer's business (Kafka: DESCRIBE / ALTER on the cluster).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from logmq.broker.users import (
    MAX_ITERATIONS,
    MECHANISM_CODES,
    MIN_ITERATIONS,
    UserStore,
)
from logmq.errors import ConfigError, ProtocolError
from logmq.kafka_codes import ErrorCode
from logmq.protocol import Request, decode_request

if TYPE_CHECKING:
    from logmq.broker.broker import Broker

__all__ = ["ScramAdminHandlers", "ALTER_SCRAM", "decode_alter_scram"]
ALTER_SCRAM = 51

_NAMES = {code: name for name, code in MECHANISM_CODES.items()}
_NOT_FOUND = int(ErrorCode.RESOURCE_NOT_FOUND)
_DUPLICATE = int(ErrorCode.DUPLICATE_RESOURCE)
_UNACCEPTABLE = int(ErrorCode.UNACCEPTABLE_CREDENTIAL)
_UNSUPPORTED = int(ErrorCode.UNSUPPORTED_SASL_MECHANISM)


def decode_alter_scram(frame: bytes, limit: int) -> Request:
    """AlterUserScramCredentials, tolerating one trailing zero byte: librdkafka (2.0 to at
    least 2.16) writes the body's empty tagged-field section twice. Kafka's parser never looks
    past the body, so the broker accepts it; a strict decode would close the connection of
    every confluent-kafka AdminClient that alters a credential."""
    try:
        return decode_request(frame, limit)
    except ProtocolError:
        if not frame.endswith(b"\0"):
            raise
        return decode_request(frame[:-1], limit)


class ScramAdminHandlers:
    """Mixin of :class:`~logmq.server.handlers.Handlers` (needs ``self.broker``)."""

    broker: Broker
    _scram_users: UserStore | None = None

    @property
    def scram_users(self) -> UserStore:
        if self._scram_users is None:
            self._scram_users = UserStore(self.broker.meta.env)
        return self._scram_users

    @scram_users.setter
    def scram_users(self, store: UserStore) -> None:
        self._scram_users = store

    def scram_table(self) -> dict[int, Callable[..., Any]]:
        return {50: self.describe_user_scram_credentials,
                51: self.alter_user_scram_credentials}

    def describe_user_scram_credentials(self, body: dict, v: int, client: Any) -> dict:
        known = self.scram_users.users()
        wanted = body.get("users")
        results = []
        if not wanted:  # null or empty: every user that has a credential
            for user, creds in known.items():
                results.append(self._described(user, creds))
        else:
            names = Counter(u["name"] for u in wanted)
            for name in dict.fromkeys(u["name"] for u in wanted):
                if names[name] > 1:
                    results.append({"user": name, "error_code": _DUPLICATE,
                                    "error_message": "Cannot describe SCRAM credentials for "
                                    "the same user twice in a single request: " + name,
                                    "credential_infos": []})
                elif name not in known:
                    results.append({"user": name, "error_code": _NOT_FOUND,
                                    "error_message": "Attempt to describe a user credential "
                                    "that does not exist: " + name, "credential_infos": []})
                else:
                    results.append(self._described(name, known[name]))
        return {"throttle_time_ms": 0, "error_code": 0, "error_message": None,
                "results": results}

    @staticmethod
    def _described(user: str, creds: list[tuple[str, int]]) -> dict:
        return {"user": user, "error_code": 0, "error_message": None,
                "credential_infos": [{"mechanism": MECHANISM_CODES[m], "iterations": i}
                                     for m, i in creds if m in MECHANISM_CODES]}

    def alter_user_scram_credentials(self, body: dict, v: int, client: Any) -> dict:
        deletions = body.get("deletions") or []
        upsertions = body.get("upsertions") or []
        seen = Counter([d["name"] for d in deletions] + [u["name"] for u in upsertions])
        errors: dict[str, tuple[int, str]] = {}
        order = list(dict.fromkeys([d["name"] for d in deletions]
                                   + [u["name"] for u in upsertions]))
        for name in order:
            if not name:
                errors[name] = (_UNACCEPTABLE, "Username must not be empty")
            elif seen[name] > 1:
                errors[name] = (_DUPLICATE, "A user credential cannot be altered twice in the "
                                "same request")
        for d in deletions:
            name, mech = d["name"], _NAMES.get(d["mechanism"])
            if name in errors:
                continue
            if mech is None:
                errors[name] = (_UNSUPPORTED, "Unknown SCRAM mechanism")
            elif self.scram_users.get(name, mech) is None:
                errors[name] = (_NOT_FOUND, "Attempt to delete a user credential that does "
                                "not exist")
        for u in upsertions:
            name, mech = u["name"], _NAMES.get(u["mechanism"])
            if name in errors:
                continue
            if mech is None:
                errors[name] = (_UNSUPPORTED, "Unknown SCRAM mechanism")
            elif not MIN_ITERATIONS <= u["iterations"] <= MAX_ITERATIONS:
                errors[name] = (_UNACCEPTABLE, f"Iterations {u['iterations']} must be at "
                                f"least {MIN_ITERATIONS} and at most {MAX_ITERATIONS}")
            elif not u.get("salt") or not u.get("salted_password"):
                errors[name] = (_UNACCEPTABLE, "Salt and salted password must not be empty")
        for d in deletions:
            if d["name"] not in errors:
                self.scram_users.remove(d["name"], _NAMES[d["mechanism"]])
        for u in upsertions:
            if u["name"] in errors:
                continue
            try:
                self.scram_users.set_salted(u["name"], _NAMES[u["mechanism"]], u["salt"],
                                            u["salted_password"], u["iterations"])
            except ConfigError as e:
                errors[u["name"]] = (_UNACCEPTABLE, str(e))
        results = [{"user": name, "error_code": errors.get(name, (0, None))[0],
                    "error_message": errors.get(name, (0, None))[1]} for name in order]
        return {"throttle_time_ms": 0, "results": results}
