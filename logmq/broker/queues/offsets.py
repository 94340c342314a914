"""Share-group start offsets as an admin sees them: describe, reset (alter) and delete.

Kafka 4.4's DescribeShareGroupOffsets / AlterShareGroupOffsets / DeleteShareGroupOffsets
work on the share-partition start offset (SPSO): everything below it is done for the group.
Altering or deleting needs the group to have no members (Kafka: NON_EMPTY_GROUP), so the
in-memory group is simply dropped and its LMDB state rewritten; the next member reopens it
from there. Delivery counts and retries scheduled for the partitions touched are discarded.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from logmq.broker.queues.state import check_group_name, pack_spso
from logmq.errors import LogMQError
from logmq.kafka_codes import ErrorCode as _E

if TYPE_CHECKING:
    from logmq.broker.queues.manager import QueueManager

__all__ = ["NonEmptyGroupError", "describe_start_offsets", "reset_start_offsets",
           "delete_group_state"]


class NonEmptyGroupError(LogMQError):
    """The share group has members: its start offsets cannot change under them."""

    kafka_code = _E.NON_EMPTY_GROUP


def describe_start_offsets(qm: QueueManager, topic: str, group: str
                           ) -> dict[int, tuple[int, int]] | None:
    """partition -> (start offset, lag: records not done), or None if the group has never
    been opened on ``topic``."""
    if group not in qm.groups_of(topic):
        return None
    sg = qm.share_group(topic, group)
    out: dict[int, tuple[int, int]] = {}
    with sg.lock:
        for part in sg.parts:
            end = qm.broker.partition_log(topic, part.p).next_offset
            lag = len(part.win) + len(part.out) + max(0, end - part.speo)
            out[part.p] = (part.spso, lag)
    return out


def _drop(qm: QueueManager, topic: str, group: str) -> None:
    """Close the in-memory group if nobody is in it; NonEmptyGroupError otherwise."""
    with qm._lock:
        sg = qm._groups.get((group, topic))
        if sg is not None:
            if sg.members:
                raise NonEmptyGroupError(f"share group {group!r} has members on {topic!r}")
            del qm._groups[(group, topic)]
            qm._topic_groups.pop(topic, None)
    if sg is not None:
        sg.close()
    qm.journal.flush()


def reset_start_offsets(qm: QueueManager, topic: str, group: str,
                        offsets: dict[int, int]) -> dict[int, int]:
    """Set the start offset of partitions (clamped to the log); the offsets applied.

    The partition's in-flight state goes with the old start (its ranges, old-format window
    keys, out-of-window keys and due-time entries): records from the new start are delivered
    afresh, with delivery count 1, as after a reset in Kafka's share groups.
    """
    check_group_name(group)
    _drop(qm, topic, group)
    store = qm.store
    gt = store.gt(group, topic)
    applied: dict[int, int] = {}
    store.register(topic, group)
    qm._topic_groups.pop(topic, None)
    with store.env.begin(write=True) as txn:
        for p, off in offsets.items():
            start, end = qm.broker.offsets((topic, p))
            off = min(max(off, start), end)
            pp = struct.pack(">I", p)
            for prefix in (b"R" + gt + pp, b"W" + gt + pp, b"O" + gt + pp):
                cur = txn.cursor(db=store.db)
                while cur.set_range(prefix) and bytes(cur.key()).startswith(prefix):
                    cur.delete()
            cur = txn.cursor(db=store.due_db)
            doomed = []
            if cur.set_range(gt):
                for k in cur.iternext(values=False):
                    kb = bytes(k)
                    if not kb.startswith(gt):
                        break
                    if struct.unpack_from(">I", kb, len(gt) + 8)[0] == p:
                        doomed.append(kb)
            for kb in doomed:
                txn.delete(kb, db=store.due_db)
            txn.put(store.spso_key(gt, p), pack_spso(off), db=store.db)
            applied[p] = off
    return applied


def delete_group_state(qm: QueueManager, topic: str, group: str) -> bool:
    """Forget the group on ``topic`` (it starts afresh if opened again); False if unknown."""
    if group not in qm.groups_of(topic):
        return False
    _drop(qm, topic, group)
    store = qm.store
    store.delete_prefixes([store.gt(group, topic)])
    with store.env.begin(db=store.db, write=True) as txn:
        txn.delete(store.group_key(topic, group))
    qm._topic_groups.pop(topic, None)
    return True
