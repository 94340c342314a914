"""Dead-lettering: copying a share group's dying records to its dead-letter topic."""

from __future__ import annotations

import logging

from logmq.broker.queues import options as O
from logmq.broker.queues.model import (
    DYING,
    GroupState,
)
from logmq.codec.records import encode_batch
from logmq.errors import (
    TopicExistsError,
    UnknownTopicError,
)

_log = logging.getLogger("logmq.queues")

__all__ = ["DeadLetters"]


class DeadLetters(GroupState):
    # ------------------------------------------------------------------ dead letters
    def dlq_topic(self) -> str:
        return self.cfg.dead_letter_topic or f"{self.topic}.dlq"

    def _bury(self, dead: list) -> None:
        """Copy dying records to the dead-letter topic, then archive them (outside the lock)."""
        dlq = self.dlq_topic()
        now = self.now_ms()
        try:
            try:
                n = self.broker.partitions_for(dlq)
            except UnknownTopicError:
                try:
                    self.broker.create_topic(dlq, partitions=len(self.parts))
                except TopicExistsError:
                    pass
                n = self.broker.partitions_for(dlq)
            by_part: dict[int, list[tuple]] = {}
            for rec, _ver, reason, error in dead:
                r = rec.record
                hdrs = [(k, v) for k, v in (r.headers or ())
                        if k not in (O.DELIVER_AT, O.EXPIRES_AT) and not k.startswith("logmq.dlq.")]
                hdrs += [
                    (O.DLQ_TOPIC, self.topic.encode()),
                    (O.DLQ_PARTITION, b"%d" % rec.p),
                    (O.DLQ_OFFSET, b"%d" % rec.off),
                    (O.DLQ_GROUP, self.group.encode()),
                    (O.DLQ_ATTEMPTS, b"%d" % rec.count),
                    (O.DLQ_REASON, reason.encode()),
                    (O.DLQ_ERROR, (error or "").encode("utf-8", "replace")[:4096]),
                    (O.DLQ_PRODUCED_AT, b"%d" % r.timestamp),
                    (O.DLQ_DEAD_AT, b"%d" % now),
                ]
                if rec.first_ms:
                    hdrs.append((O.DLQ_FIRST_DELIVERY_AT, b"%d" % rec.first_ms))
                by_part.setdefault(rec.p % n, []).append((r.key, r.value, hdrs))
            for p, recs in by_part.items():
                self.broker.append_batches((dlq, p), encode_batch(recs, timestamp=now))
        except BaseException:
            with self.cond:  # not copied: leave them to be retried
                for rec, ver, _reason, _error in dead:
                    if rec.ver == ver and rec.state == DYING:
                        self._push_avail(rec)
                self.cond.notify_all()
            raise
        with self.cond:
            ops: list = []
            for rec, ver, reason, error in dead:
                if rec.ver == ver and rec.state == DYING:
                    self.dead_lettered += 1
                    self._done(rec, ops)
                    _log.warning("dead-lettered %s-%d@%d (group %s) to %s: %s%s", self.topic,
                                 rec.p, rec.off, self.group, dlq, reason,
                                 f" ({error})" if error else "")
            self._range_ops(ops)
            seq = self.journal.submit(ops) if ops else 0
            self.cond.notify_all()
        if seq:
            self.journal.wait(seq)
