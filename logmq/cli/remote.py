"""``--bootstrap host:port``: the CLI's commands against a running ``logmq serve``.

A data directory is owned by one process, so while a server runs, the CLI cannot open it.
:class:`RemoteLog` stands in for the :class:`~logmq.broker.broker.Broker` the commands use,
implementing the same methods over the Kafka protocol with :class:`~logmq.wire_client.WireClient`:
topics (list, describe, create, delete), offsets and timestamps, produce, consume by
partition, and the read side of groups (list, describe with committed offsets and lag).
What the wire protocol subset cannot do (altering configs, joining a group, deleting groups,
resetting offsets, compaction) fails with one clear line instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from logmq.broker.partitioner import key_partition
from logmq.errors import InvalidPartitionError, LogMQError, UnknownTopicError
from logmq.kafka_codes import ErrorCode
from logmq.types import (
    OffsetAndTimestamp,
    PartitionInfo,
    Record,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
)
from logmq.wire_client import WireClient, WireError

__all__ = ["RemoteLog"]

_UNKNOWN_TOPIC = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
_TOPIC_EXISTS = ErrorCode.TOPIC_ALREADY_EXISTS


def _unsupported(what: str) -> LogMQError:
    return LogMQError(f"{what} is not available with --bootstrap; run it on the data directory "
                      "(stop the server first) or use a Kafka admin tool")


class _Done:
    """A completed send, shaped like :class:`~logmq.broker.producer.RecordFuture`."""

    def __init__(self, md: RecordMetadata | None, err: BaseException | None) -> None:
        self._md, self._err = md, err

    def result(self, timeout: float | None = None) -> RecordMetadata:
        if self._err is not None:
            raise self._err
        assert self._md is not None
        return self._md

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._err

    def done(self) -> bool:
        return True

    def add_done_callback(self, fn: Any) -> None:
        fn(self)


class _RemoteProducer:
    """Buffers records per partition and sends a batch per partition on flush (every 1,000)."""

    def __init__(self, log: RemoteLog) -> None:
        self.log = log
        self._pending: dict[tuple[str, int], list[tuple[tuple, int, list]]] = {}
        self._rr = 0
        self._count = 0

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
             partition: int | None = None, timestamp: int | None = None) -> Any:
        n = self.log.partitions_for(topic)
        if partition is None:
            if key is None:
                partition = self._rr % n
                self._rr += 1
            else:
                partition = key_partition(key, n)
        elif not 0 <= partition < n:
            raise InvalidPartitionError(topic, partition, n)
        ts = int(time.time() * 1000) if timestamp is None else timestamp
        fut = _Pending()
        hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        self._pending.setdefault((topic, partition), []).append(((key, value, hdrs), ts, [fut]))
        self._count += 1
        if self._count >= 1000:
            self.flush()
        return fut

    def flush(self, timeout: float | None = None) -> None:
        pending, self._pending, self._count = self._pending, {}, 0
        for (topic, p), items in pending.items():
            try:
                base = self.log.client.produce(
                    topic, p, [rec for rec, _ts, _f in items],
                    timestamps=[ts for _r, ts, _f in items])
                err = None
            except LogMQError as e:
                base, err = -1, e
            for i, (_rec, ts, (fut,)) in enumerate(items):
                fut.set(RecordMetadata(topic, p, base + i, ts) if err is None else None, err)

    def close(self, timeout: float | None = None) -> None:
        self.flush()

    def __enter__(self) -> _RemoteProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pending(_Done):
    def __init__(self) -> None:
        super().__init__(None, None)
        self._callbacks: list[Any] = []
        self._set = threading.Event()

    def set(self, md: RecordMetadata | None, err: BaseException | None) -> None:
        self._md, self._err = md, err
        self._set.set()
        for fn in self._callbacks:
            fn(self)

    def done(self) -> bool:
        return self._set.is_set()

    def add_done_callback(self, fn: Any) -> None:
        if self._set.is_set():
            fn(self)
        else:
            self._callbacks.append(fn)


class _RemoteConsumer:
    """Reads assigned partitions by offset with Fetch; no group membership."""

    def __init__(self, log: RemoteLog, *, group: str | None = None,
                 max_poll_records: int = 500, **_ignored: Any) -> None:
        if group is not None:
            raise _unsupported("consuming as a group (--group)")
        self.log = log
        self.max_poll_records = max_poll_records
        self._pos: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()

    def assign(self, tps: list[Any]) -> None:
        self._pos = {TopicPartition(*tp): self.log.start_offset(tp) for tp in tps}
        self._paused &= set(self._pos)

    def pause(self, *tps: Any) -> None:
        """Stop fetching these partitions (read_records pauses each one it has finished)."""
        self._paused.update(TopicPartition(*tp) for tp in tps)

    def resume(self, *tps: Any) -> None:
        self._paused.difference_update(TopicPartition(*tp) for tp in tps)

    def assignment(self) -> set[TopicPartition]:
        return set(self._pos)

    def seek(self, tp: Any, offset: int) -> None:
        self._pos[TopicPartition(*tp)] = offset

    def position(self, tp: Any) -> int:
        return self._pos[TopicPartition(*tp)]

    def subscribe(self, *a: Any, **k: Any) -> None:
        raise _unsupported("joining a consumer group")

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[Record]:
        limit = max_records or self.max_poll_records
        out: list[Record] = []
        wait = int(timeout * 1000)
        for tp, pos in list(self._pos.items()):
            if tp in self._paused:
                continue
            recs, _hw = self.log.client.fetch(tp.topic, tp.partition, pos,
                                              max_wait_ms=wait if not out else 0)
            for off, ts, k, v, h in recs[: limit - len(out)]:
                out.append(Record(tp.topic, tp.partition, off, ts, k, v, h))
                self._pos[tp] = off + 1
            if len(out) >= limit:
                break
        return out

    def commit(self, *a: Any, **k: Any) -> None:
        raise _unsupported("committing offsets")

    def close(self, commit: bool = False) -> None:
        pass


class _RemoteGroups:
    """The read side of the group coordinator, over ListGroups/DescribeGroups/OffsetFetch."""

    def __init__(self, client: WireClient) -> None:
        self.client = client

    def list_groups(self) -> list[tuple[str, str, str]]:
        out = []
        for gid, ptype in self.client.list_groups():
            out.append((gid, ptype, self.client.describe_group(gid)["group_state"]))
        return out

    def describe_group(self, group: str) -> Any:
        from logmq.broker.groups import GroupDescription, MemberDescription

        d = self.client.describe_group(group)
        members = [MemberDescription(m["member_id"], m.get("group_instance_id"),
                                     m["client_id"], m["client_host"], m["member_metadata"],
                                     m["member_assignment"]) for m in d["members"]]
        return GroupDescription(group, d["group_state"], d["protocol_type"],
                                d["protocol_data"], members)

    def fetch_offsets(self, group: str, partitions: list[tuple[str, int]] | None
                      ) -> dict[tuple[str, int], tuple[int, str | None]]:
        got = self.client.committed(group)
        want = None if partitions is None else set(partitions)
        return {tp: (off, None) for tp, off in got.items() if want is None or tp in want}

    def __getattr__(self, name: str) -> Any:
        raise _unsupported(f"groups {name.replace('_', ' ')}")


class RemoteLog:
    """The subset of :class:`~logmq.broker.broker.Broker` the CLI uses, over the wire."""

    def __init__(self, bootstrap: str) -> None:
        self.client = WireClient(bootstrap)
        self.path = bootstrap
        self._groups = _RemoteGroups(self.client)

    # topics
    def list_topics(self) -> list[str]:
        return self.client.list_topics()

    def partitions_for(self, topic: str) -> int:
        try:
            return self.client.partitions(topic)
        except WireError as e:
            if e.kafka_code == _UNKNOWN_TOPIC:
                raise UnknownTopicError(topic) from None
            raise

    def partition_log(self, topic: str, partition: int) -> None:
        n = self.partitions_for(topic)
        if not 0 <= partition < n:
            raise InvalidPartitionError(topic, partition, n)

    def describe_topic(self, name: str) -> TopicDescription:
        n = self.partitions_for(name)
        parts = [PartitionInfo(p, self.client.offsets(name, p, -2),
                               self.client.offsets(name, p, -1), -1, -1) for p in range(n)]
        cfg = self.client.describe_configs(name)
        config = {k: v for k, (v, _d) in cfg.items()}
        overrides = {k: v for k, (v, is_default) in cfg.items() if not is_default}
        return TopicDescription(name, parts, config, overrides)

    def topic_config(self, name: str) -> dict[str, Any]:
        return self.describe_topic(name).config

    def create_topic(self, name: str, partitions: int | None = None,
                     config: Mapping[str, Any] | None = None, *, exist_ok: bool = False) -> None:
        try:
            self.client.create_topic(name, -1 if partitions is None else partitions,
                                     dict(config or {}))
        except WireError as e:
            if not (exist_ok and e.kafka_code == _TOPIC_EXISTS):
                raise

    def delete_topic(self, name: str) -> None:
        self.client.delete_topic(name)

    def alter_topic_config(self, *a: Any, **k: Any) -> Any:
        raise _unsupported("altering topic configs")

    # offsets
    def start_offset(self, tp: Any) -> int:
        return self.client.offsets(tp[0], tp[1], -2)

    def end_offset(self, tp: Any) -> int:
        return self.client.offsets(tp[0], tp[1], -1)

    def offsets(self, tp: Any) -> tuple[int, int]:
        return self.start_offset(tp), self.end_offset(tp)

    def offsets_for_times(self, timestamps: Mapping[Any, int]
                          ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for tp, ts in timestamps.items():
            off = self.client.offsets(tp[0], tp[1], ts)
            out[TopicPartition(*tp)] = None if off < 0 else OffsetAndTimestamp(off, ts)
        return out

    def append_batches(self, tp: Any, data: bytes) -> int:
        """Produce already-encoded v2 batches as they are (``replay --to``); first offset."""
        topic, partition = tp[0], int(tp[1])
        resp = self.client.call(0, {"acks": -1, "timeout_ms": 30_000, "transactional_id": None,
                                    "topic_data": [{"name": topic, "partition_data": [
                                        {"index": partition, "records": data}]}]})
        p = resp["responses"][0]["partition_responses"][0]
        if p["error_code"]:
            raise WireError(f"produce to {topic}-{partition}", p["error_code"],
                            p.get("error_message"))
        return int(p["base_offset"])

    # clients
    def producer(self, **_config: Any) -> _RemoteProducer:
        return _RemoteProducer(self)

    def consumer(self, *topics: str, **config: Any) -> _RemoteConsumer:
        c = _RemoteConsumer(self, **config)
        if topics:
            c.assign([(t, p) for t in topics for p in range(self.partitions_for(t))])
        return c

    @property
    def groups(self) -> Any:
        return self._groups

    def close(self) -> None:
        self.client.close()

    def __getattr__(self, name: str) -> Any:
        raise _unsupported(name.replace("_", " "))
