"""A share-group acquisition whose LMDB commit fails (disk full) must not count as a delivery.

Found while explaining the soak's "2 acknowledged jobs unprocessed" (issue 11): when the
journal commit of an acquisition failed, ``Actions.receive`` raised but left the records
ACQUIRED by the member, with their delivery count already raised. Nobody held them, so they
waited out ``lock_ms``, and the lock expiry counted one more attempt and applied the retry
backoff; after ``max_attempts`` such failures a record was dead-lettered without having been
delivered to anyone. A full disk of a few seconds can so send healthy jobs to the DLQ (the
soak masks it with ``max_attempts=1000``) and delay the others by up to ``backoff_max_ms``.
"""

from __future__ import annotations

import pytest

from logmq.errors import DiskFullError


def _failing_commits(journal, n: int) -> list[int]:
    """Make the next ``n`` journal commits fail like a full disk does."""
    real = journal._write
    left = [n]

    def write(ops):
        if left[0] > 0:
            left[0] -= 1
            raise OSError(28, "No space left on device")
        return real(ops)

    journal._write = write
    return left


def test_failed_acquisition_commit_is_not_a_delivery(log):
    log.create_topic("jobs")
    log.producer().send("jobs", b"job-1").result()
    q = log.queue("jobs", group="w", max_attempts=2, backoff_base_ms=0, lock_ms=50)
    left = _failing_commits(log.queues.store.journal, 2)
    for _ in range(2):  # the disk is full: each receive fails, nothing reaches the member
        with pytest.raises(DiskFullError):  # typed, and nothing reached the member
            q.receive(1, timeout=2)
    assert left[0] == 0
    got = q.receive(1, timeout=2)  # the disk has room again
    assert [r.value for r in got] == [b"job-1"], "the job went to the DLQ undelivered"
    assert got[0].delivery_count == 1
    got[0].ack()
