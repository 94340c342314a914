"""Who is asking the HTTP listener, and what they may see: the Kafka port's principals and ACLs.

With the authorizer off (the default) the HTTP listener stays open, as it was. With it on,
every route but the probes (``/healthz``, ``/readyz``) and the dashboard's static files needs
a principal, and answers only what that principal's ACLs allow:

- ``Authorization: Bearer <token>``: a token issued to a principal with
  ``logmq acls token add User:alice`` (kept in LMDB as a SHA-256 digest, never the token);
- ``Authorization: Basic`` with the token as the password (any user name), so a browser's
  password prompt opens the dashboard; when a password checker for the SASL users store is
  installed (:attr:`HttpAuth.password_check`, ``(name, password) -> bool``), Basic with a
  user's own name and password is ``User:<name>``.

Routes and the ACL each needs: the overview, config, warnings, history and metrics (the
Prometheus text and the JSON snapshot) need DESCRIBE on the cluster; topic lists show only the
topics the principal may DESCRIBE, a topic page needs DESCRIBE on it; the same for groups and
work queues (DESCRIBE on the group). Refusals are 401 (no or bad credentials, with
``WWW-Authenticate``) or 403, and failed authentications go to the audit log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from logmq.broker.acls import CLUSTER_NAME, AclOperation, ResourceType, parse_principal

if TYPE_CHECKING:
    import lmdb

    from logmq.broker.acls import Authorizer

__all__ = ["TokenStore", "HttpAuth", "OPEN_PATHS"]

_DB = b"http_tokens"
OPEN_PATHS = frozenset(("/healthz", "/readyz"))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenStore:
    """Bearer tokens of the HTTP listener (LMDB ``http_tokens``: digest -> principal)."""

    def __init__(self, env: lmdb.Environment) -> None:
        self._env = env
        self._db = env.open_db(_DB)
        self._lock = threading.Lock()

    def issue(self, principal: str) -> str:
        """A new token for ``principal`` (returned once; only its digest is kept)."""
        token = secrets.token_urlsafe(32)
        with self._env.begin(db=self._db, write=True) as txn:
            txn.put(_digest(token), parse_principal(principal).encode())
        return token

    def revoke(self, principal: str) -> int:
        """Drop every token of ``principal``; how many there were."""
        with self._env.begin(db=self._db, write=True) as txn:
            doomed = [bytes(k) for k, v in txn.cursor() if bytes(v).decode() == principal]
            for k in doomed:
                txn.delete(k)
        return len(doomed)

    def principals(self) -> dict[str, int]:
        """principal -> number of tokens."""
        out: dict[str, int] = {}
        with self._env.begin(db=self._db) as txn:
            for _, v in txn.cursor():
                p = bytes(v).decode()
                out[p] = out.get(p, 0) + 1
        return out

    def principal_of(self, token: str) -> str | None:
        with self._env.begin(db=self._db) as txn:
            raw = txn.get(_digest(token))
        return None if raw is None else bytes(raw).decode()


class HttpAuth:
    """Authentication and route checks for one HTTP listener (authorizer on)."""

    def __init__(self, tokens: TokenStore, authorizer: Authorizer,
                 audit: Any = None) -> None:
        self.tokens = tokens
        self.authorizer = authorizer
        self.audit = audit
        #: optional ``(name, password) -> bool`` against the SASL users store
        self.password_check: Callable[[str, str], bool] | None = None

    def authenticate(self, header: str | None, peer: str) -> str | None:
        """The principal of an ``Authorization`` header, or None (audited as a failure)."""
        principal = self._principal(header)
        if self.audit is not None and header:
            self.audit.record("authenticate", principal or "User:ANONYMOUS", peer,
                              "ok" if principal else "failed", listener="http")
        return principal

    def _principal(self, header: str | None) -> str | None:
        if not header:
            return None
        scheme, _, cred = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return self.tokens.principal_of(cred.strip())
        if scheme != "basic":
            return None
        try:
            name, sep, password = base64.b64decode(cred.strip(), validate=True).decode(
            ).partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep:
            return None
        found = self.tokens.principal_of(password)
        if found is not None:
            return found
        check = self.password_check
        if check is not None and name and check(name, password):
            return f"User:{name}"
        return None

    # ------------------------------------------------------------------ routes
    def may(self, principal: str, host: str, op: AclOperation, rtype: ResourceType,
            name: str) -> bool:
        return self.authorizer.authorize(principal, host, op, rtype, name)

    def check_route(self, principal: str, host: str, parts: list[str]) -> bool:
        """May ``principal`` open ``/api/v1/<parts>`` (before its answer is filtered)?"""
        if parts and parts[0] in ("topics", "groups") and len(parts) == 2:
            rtype = ResourceType.TOPIC if parts[0] == "topics" else ResourceType.GROUP
            return self.may(principal, host, AclOperation.DESCRIBE, rtype, parts[1])
        if parts in (["topics"], ["groups"], ["queues"]):
            return True  # filtered below
        return self.may(principal, host, AclOperation.DESCRIBE, ResourceType.CLUSTER,
                        CLUSTER_NAME)

    def filter(self, principal: str, host: str, parts: list[str], obj: Any) -> Any:
        """Only the topics, groups and queues the principal may DESCRIBE."""
        if not isinstance(obj, list) or parts not in (["topics"], ["groups"], ["queues"]):
            return obj

        def visible(item: Any) -> bool:
            if not isinstance(item, dict):
                return False
            if parts == ["topics"]:
                return self.may(principal, host, AclOperation.DESCRIBE, ResourceType.TOPIC,
                                str(item.get("name", item.get("topic", ""))))
            group = item.get("group_id", item.get("group", ""))
            return self.may(principal, host, AclOperation.DESCRIBE, ResourceType.GROUP,
                            str(group))

        return [i for i in obj if visible(i)]
