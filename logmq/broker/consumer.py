"""The embedded consumer: assign or subscribe, seek, poll without busy looping, iterate.

A consumer reads stored batches straight from the partition logs, checks each batch's CRC
(corruption is reported with the segment file and byte position), and decodes records into
:class:`~logmq.types.Record` tuples. Waiting for new data uses the broker's append
notifications: an idle ``poll(timeout)`` sleeps on an event that the appending thread sets.

Without ``group`` a consumer is a plain reader: positions live only in the object, and
``topics`` passed to the constructor are assigned whole (every partition). With ``group`` it
joins that consumer group (see :mod:`logmq.broker.groups`): partitions are shared among the
group's members and positions are committed to the broker.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from logmq.broker.seeking import Seeking, as_tp
from logmq.codec.batch import LOG_OVERHEAD, batch_size_at, validate_batch
from logmq.codec.records import decode_records_into
from logmq.errors import (
    BrokerClosedError,
    ConfigError,
    CorruptRecordError,
    NoOffsetError,
    OffsetOutOfRangeError,
)
from logmq.types import Record, TopicPartition

if TYPE_CHECKING:
    from logmq.broker.groups.coordinator import GroupCoordinator
    from logmq.storage.interface import LogStore

__all__ = ["Consumer"]

_RESETS = ("earliest", "latest", "none")


_tp = as_tp  # the name the code below uses


class Consumer(Seeking):
    """Reads records from a :class:`~logmq.broker.broker.Broker`.

    Config: ``group`` (consumer group id, or None), ``auto_offset_reset`` (earliest, latest
    or none: where to start without a committed offset, and what to do when the position falls
    out of the log), ``max_poll_records`` (default 500), ``fetch_max_bytes`` (bytes read per
    partition per fetch, default 1 MiB), ``key_deserializer`` / ``value_deserializer``,
    ``check_crcs`` (default True), ``consumer_timeout_ms`` (iteration stops after this long
    without records; default: never), ``filter`` (a predicate on records, or a declarative
    key/header match, see :mod:`logmq.broker.queues.filters`: records it drops are skipped,
    positions still move past them), ``isolation_level`` (``read_committed``: only records of
    committed transactions, up to the last stable offset; default ``read_uncommitted``). Group
    options are documented in
    :mod:`logmq.broker.membership`.
    """

    def __init__(
        self,
        broker: LogStore,
        *topics: str,
        group: str | None = None,
        coordinator: Callable[[], GroupCoordinator] | None = None,
        auto_offset_reset: str = "latest",
        max_poll_records: int = 500,
        fetch_max_bytes: int = 1 << 20,
        key_deserializer: Callable[[bytes | None], Any] | None = None,
        value_deserializer: Callable[[bytes | None], Any] | None = None,
        check_crcs: bool = True,
        consumer_timeout_ms: float | None = None,
        filter: Any = None,  # noqa: A002 - the name users expect
        isolation_level: str = "read_uncommitted",
        **group_config: Any,
    ) -> None:
        if auto_offset_reset not in _RESETS:
            raise ConfigError(f"auto_offset_reset must be one of {_RESETS}")
        if isolation_level not in ("read_uncommitted", "read_committed"):
            raise ConfigError("isolation_level must be read_uncommitted or read_committed")
        #: read_committed: stop at the last stable offset, skip aborted transactions' records
        self.read_committed = isolation_level == "read_committed"
        self._aborted: list[Any] = []
        if max_poll_records < 1 or fetch_max_bytes < 1:
            raise ConfigError("max_poll_records and fetch_max_bytes must be >= 1")
        self._broker = broker
        self.group = group
        self.auto_offset_reset = auto_offset_reset
        self.max_poll_records = max_poll_records
        self.fetch_max_bytes = fetch_max_bytes
        self._kdes = key_deserializer
        self._vdes = value_deserializer
        self._check_crcs = check_crcs
        self._filter: Callable[[Record], bool] | None = None
        if filter is not None:
            from logmq.broker.queues.filters import make_filter

            self._filter = make_filter(filter)
        self._timeout = None if consumer_timeout_ms is None else consumer_timeout_ms / 1000
        self._wake = threading.Event()
        self._wake_fn = self._wake.set
        self._positions: dict[TopicPartition, int] = {}
        self._assigned: list[TopicPartition] = []
        self._paused: set[TopicPartition] = set()
        self._rr = 0
        self._closed = False
        self._member = None
        if group is not None:
            from logmq.broker.membership import GroupMember

            if coordinator is None:
                raise ConfigError("a consumer group needs the coordinator: create the consumer "
                                  "with Broker.consumer(..., group=...)")
            self._member = GroupMember(self, broker, group, coordinator(), **group_config)
            if topics:
                self.subscribe(list(topics))
        else:
            if group_config:
                raise ConfigError(
                    f"{', '.join(sorted(group_config))} need a group (pass group=...)")
            if topics:
                tps: list[TopicPartition] = []
                for t in topics:
                    n = broker.partitions_for(t)
                    tps.extend(TopicPartition(t, p) for p in range(n))
                self.assign(tps)

    # ------------------------------------------------------------------ assignment
    def assign(self, partitions: Iterable[Any]) -> None:
        """Read exactly these partitions (no group rebalancing)."""
        if self._member is not None and self._member.subscription:
            raise ConfigError("cannot assign() while subscribed to a group")
        self.apply_assignment([_tp(x) for x in partitions])

    def apply_assignment(self, tps: list[TopicPartition]) -> None:
        """Read exactly ``tps`` from now on (the group membership calls this on a rebalance)."""
        for tp in tps:
            self._broker.partition_log(tp.topic, tp.partition)  # raises for unknown
        for tp in self._assigned:
            if tp not in tps:
                self._broker.remove_waiter(tp, self._wake_fn)
                self._positions.pop(tp, None)
        for tp in tps:
            self._broker.add_waiter(tp, self._wake_fn)
        self._assigned = list(dict.fromkeys(tps))
        self._paused &= set(self._assigned)
        self._wake.set()

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def subscribe(self, topics: Iterable[str], *, on_assign: Callable[..., None] | None = None,
                  on_revoke: Callable[..., None] | None = None) -> None:
        """Join the consumer group for these topics (needs ``group``)."""
        if self._member is None:
            raise ConfigError("subscribe() needs a group; use assign() or pass group=...")
        self._member.subscribe(list(topics), on_assign=on_assign, on_revoke=on_revoke)

    def unsubscribe(self) -> None:
        if self._member is not None:
            self._member.unsubscribe()
        self.apply_assignment([])

    def pause(self, *partitions: Any) -> None:
        self._paused.update(_tp(p) for p in partitions)

    def resume(self, *partitions: Any) -> None:
        self._paused.difference_update(_tp(p) for p in partitions)

    # ------------------------------------------------------------------ positions
    def seek(self, tp: Any, offset: int) -> None:
        t = _tp(tp)
        if t not in self._assigned:
            raise ConfigError(f"{t} is not assigned to this consumer")
        if offset < 0:
            raise ConfigError("offset must be >= 0")
        self._positions[t] = offset
        self._wake.set()

    def position(self, tp: Any) -> int:
        t = _tp(tp)
        pos = self._positions.get(t)
        if pos is None:
            pos = self._initial_position(t)
        return pos

    def _initial_position(self, tp: TopicPartition) -> int:
        if self._member is not None:
            committed = self._member.committed_offset(tp)
            if committed is not None:
                self._positions[tp] = committed
                return committed
        pos = self._reset(tp, None)
        self._positions[tp] = pos
        return pos

    def _reset(self, tp: TopicPartition, err: OffsetOutOfRangeError | None) -> int:
        policy = self.auto_offset_reset
        if policy == "earliest":
            return self._broker.start_offset(tp)
        if policy == "latest":
            return self._broker.end_offset(tp)
        if err is not None:
            raise err
        raise NoOffsetError(f"no committed offset for {tp} and auto_offset_reset='none'")

    def committed(self, tp: Any) -> int | None:
        if self._member is None:
            return None
        return self._member.committed_offset(_tp(tp))

    def commit(self, offsets: Mapping[Any, int | tuple[int, str | None]] | None = None) -> None:
        """Commit positions (or the given offsets) for the group; durable when it returns."""
        if self._member is None:
            raise ConfigError("commit() needs a group")
        self._member.commit(offsets)

    def lag(self, tp: Any) -> int:
        t = _tp(tp)
        return self._broker.end_offset(t) - self.position(t)

    # ------------------------------------------------------------------ polling
    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[Record]:
        """Records from the assigned partitions; waits up to ``timeout`` seconds for some."""
        if self._closed:
            raise BrokerClosedError("consumer is closed")
        limit = self.max_poll_records if max_records is None else max_records
        deadline = time.monotonic() + timeout
        while True:
            if self._member is not None:
                self._member.poll()
            self._wake.clear()
            out = self._fetch(limit)
            if out:
                if self._member is not None:
                    self._member.after_poll()
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            if self._member is not None:
                left = min(left, self._member.max_wait())
            self._wake.wait(left)
            if self._closed:
                return []

    def _fetch(self, limit: int) -> list[Record]:
        f = self._filter
        if f is None:
            return self._fetch_records(limit)
        while True:  # keep reading past records the filter drops, without waiting
            out = self._fetch_records(limit)
            if not out:
                return out
            kept = [r for r in out if f(r)]
            if kept:
                return kept

    def _fetch_records(self, limit: int) -> list[Record]:
        out: list[Record] = []
        tps = [t for t in self._assigned if t not in self._paused]
        if not tps:
            return out
        n = len(tps)
        start = self._rr % n
        self._rr += 1
        # Decoding allocates one tuple per record and nothing cyclic; pausing the cyclic GC
        # for the duration saves it from rescanning the growing batch (about 35% of poll).
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            for i in range(n):
                tp = tps[(start + i) % n]
                self._fetch_partition(tp, out, limit - len(out))
                if len(out) >= limit:
                    break
        finally:
            if paused:
                gc.enable()
        if self._kdes is not None or self._vdes is not None:
            kd = self._kdes or (lambda b: b)
            vd = self._vdes or (lambda b: b)
            out = [r._replace(key=kd(r.key), value=vd(r.value)) for r in out]
        return out

    def _fetch_partition(self, tp: TopicPartition, out: list[Record], limit: int) -> None:
        pos = self._positions.get(tp)
        if pos is None:
            pos = self._initial_position(tp)
        plog = self._broker.partition_log(tp.topic, tp.partition)
        if pos == plog.next_offset:
            return
        try:
            sl = self._read(plog, pos)
        except OffsetOutOfRangeError as e:
            pos = self._reset(tp, e)
            self._positions[tp] = pos
            sl = self._read(plog, pos)
        if sl is None:
            return
        if sl.length == 0:  # nothing but a compaction gap up to the end of the log
            self._positions[tp] = max(pos, sl.end)
            return
        data = sl.read()
        view = memoryview(data)
        topic, part = tp
        p = 0
        end = len(data)
        while p < end and limit > 0:
            size = batch_size_at(view, p)
            if size < 0 or p + size > end:
                break
            if self._check_crcs:
                try:
                    h = validate_batch(view, p)
                except CorruptRecordError as e:
                    raise CorruptRecordError(
                        f"corrupt batch while reading {tp.topic}-{tp.partition} at offset {pos}: "
                        f"{e.args[0]}", path=sl.segment.log_path, position=sl.position + p
                    ) from None
            else:
                from logmq.codec.batch import parse_header

                h = parse_header(view, p)
            if h.next_offset <= pos or h.is_control or (self._aborted and _in_aborted(
                    h, self._aborted)):
                pos = max(pos, h.next_offset)
                p += size
                continue
            before = len(out)
            decode_records_into(view[p : p + size], out, pos, limit, record_cls=Record,
                                topic=topic, partition=part)
            got = len(out) - before
            limit -= got
            if limit <= 0 and got and out[-1].offset < h.last_offset:
                pos = out[-1].offset + 1
            else:
                pos = h.next_offset
            p += size
        if p == 0 and end >= LOG_OVERHEAD and batch_size_at(view, 0) > end:
            raise CorruptRecordError("segment ends inside a batch", path=sl.segment.log_path,
                                     position=sl.position)
        self._positions[tp] = pos

    def _read(self, plog: Any, pos: int) -> Any:
        if not self.read_committed:
            return plog.read(pos, self.fetch_max_bytes)
        from logmq.storage.txn_ops import read_committed

        sl, _lso, self._aborted = read_committed(plog, pos, self.fetch_max_bytes)
        return sl

    def __iter__(self) -> Iterator[Record]:
        while not self._closed:
            batch = self.poll(self._timeout if self._timeout is not None else 3600.0)
            if not batch:
                if self._timeout is not None:
                    return
                continue
            yield from batch

    # ------------------------------------------------------------------ lifecycle
    def close(self, commit: bool = True) -> None:
        """Leave the group (committing positions first if auto-commit is on) and stop."""
        if self._closed:
            return
        if self._member is not None:
            self._member.close(commit=commit)
        self._closed = True
        for tp in self._assigned:
            self._broker.remove_waiter(tp, self._wake_fn)
        self._wake.set()

    def wakeup(self) -> None:
        """Make a blocked :meth:`poll` return early (from another thread)."""
        self._wake.set()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _in_aborted(h: Any, aborted: list[Any]) -> bool:
    """Whether batch ``h`` belongs to one of the aborted transactions (its records are
    skipped by read_committed, as Kafka clients do with a Fetch's aborted list)."""
    if not h.attributes & 0x10:  # not transactional
        return False
    return any(a.producer_id == h.producer_id and a.first_offset <= h.base_offset
               <= a.last_offset for a in aborted)
