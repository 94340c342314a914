"""Names that become parts of LMDB keys, and how long they may be.

LMDB refuses keys over 511 bytes (``lmdb.BadValsizeError``), and a store key joins a name
with others: a committed offset is group + topic + partition, a share group's due-time entry
group + topic + 20 bytes, a SCRAM credential user + mechanism, an ACL its whole binding. Kafka
has no such bounds (its names are any int16-length string), so logmq sets its own, checks
them where the key is built (reads and writes alike), and answers a longer name with the
error code a bad name gets (``INVALID_GROUP_ID`` for a group id), never an exception from
deep inside a commit. Topic names keep Kafka's own limit of 249 characters.

| name | limit (UTF-8 bytes) | refused with |
| --- | --- | --- |
| consumer, share and transactional-offset group ids | 200 | ``INVALID_GROUP_ID`` |
| SCRAM user names | 255 | ``UNACCEPTABLE_CREDENTIAL`` |
| an ACL binding (resource name + principal + host) | 511 as stored | ``INVALID_REQUEST`` |
| a client-quota entity (its types and names) | 511 as stored | ``INVALID_REQUEST`` |
"""

from __future__ import annotations

from logmq.errors import InvalidGroupIdError

__all__ = ["LMDB_MAX_KEY_BYTES", "MAX_GROUP_ID_BYTES", "MAX_USER_NAME_BYTES", "utf8_len",
           "group_id_problem", "check_group_id", "key_fits"]

#: LMDB's compiled-in maximum key size (``mdb_env_get_maxkeysize``)
LMDB_MAX_KEY_BYTES = 511
#: 200 + a 249-character topic + the share state's 22 bytes of framing still fit in a key
MAX_GROUP_ID_BYTES = 200
MAX_USER_NAME_BYTES = 255


def utf8_len(name: str) -> int:
    return len(name.encode("utf-8", "surrogatepass"))


def group_id_problem(group: str, *, allow_empty: bool = False) -> str | None:
    """Why ``group`` cannot be a stored group id, or None.

    A NUL is refused because keys join names with NUL (two groups would share a key prefix).
    An empty id is allowed only where Kafka allows it (committing and fetching offsets).
    """
    if not group and not allow_empty:
        return "the group id is empty"
    if "\x00" in group:
        return "a group id must not contain NUL"
    n = utf8_len(group)
    if n > MAX_GROUP_ID_BYTES:
        return (f"the group id is {n} bytes long; logmq keeps group ids of at most "
                f"{MAX_GROUP_ID_BYTES} UTF-8 bytes (they are parts of LMDB keys)")
    return None


def check_group_id(group: str, *, allow_empty: bool = False) -> None:
    """InvalidGroupIdError for what :func:`group_id_problem` refuses. Kafka refuses an empty
    id in JoinGroup, SyncGroup, Heartbeat and LeaveGroup the same way (INVALID_GROUP_ID)."""
    problem = group_id_problem(group, allow_empty=allow_empty)
    if problem:
        raise InvalidGroupIdError(problem)


def key_fits(key: bytes) -> bool:
    return len(key) <= LMDB_MAX_KEY_BYTES
