"""logmq.aio: the asyncio API over the same engine."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

import logmq
import logmq.aio
from logmq.errors import BrokerClosedError, TopicExistsError
from logmq.types import RecordMetadata, TopicPartition


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_open_produce_consume_roundtrip(tmp_path):
    async def main():
        async with logmq.aio.open(tmp_path / "d") as log:
            await log.create_topic("orders", partitions=2)
            with pytest.raises(TopicExistsError):
                await log.create_topic("orders")
            d = await log.create_topic("orders", partitions=5, exist_ok=True)
            assert len(d.partitions) == 2
            async with log.producer() as p:
                md = await p.send("orders", b"v0", key=b"k", headers=[("h", b"1")])
                assert isinstance(md, RecordMetadata) and md.offset == 0
                futs = [p.send_nowait("orders", f"v{i}".encode(), key=b"k") for i in range(1, 50)]
                mds = await asyncio.gather(*futs)
                assert [m.offset for m in mds] == list(range(1, 50))
                assert {m.partition for m in mds} == {md.partition}
                await p.send_batch("orders", [(b"x", b"b1"), (b"x", b"b2")])
                await p.flush()
            c = log.consumer("orders", auto_offset_reset="earliest")
            got = []
            while len(got) < 52:
                batch = await c.getmany(timeout_ms=2000)
                assert batch, "no records within the timeout"
                for tp, recs in batch.items():
                    assert isinstance(tp, TopicPartition)
                    got.extend(recs)
            vals = sorted(r.value for r in got)
            assert len(vals) == 52 and b"b2" in vals
            assert [r.headers for r in got if r.value == b"v0"] == [[("h", b"1")]]
            await c.close()
        with pytest.raises(BrokerClosedError):
            log.sync  # noqa: B018 - closed by the async with

    run(main())


def test_consumer_waits_for_appends_on_the_loop(tmp_path):
    async def main():
        async with logmq.aio.open(tmp_path / "d") as log:
            await log.create_topic("t")
            c = log.consumer("t", auto_offset_reset="earliest")
            assert await c.getmany(timeout_ms=50) == {}      # empty log: times out empty
            waiter = asyncio.create_task(c.getone())
            await asyncio.sleep(0)
            assert not waiter.done()
            # appended from another thread with the sync API: the append notification wakes it
            t = threading.Thread(target=lambda: log.sync.producer(linger_ms=0)
                                 .send("t", b"late").result())
            t.start()
            rec = await asyncio.wait_for(waiter, 10)
            t.join()
            assert rec.value == b"late"
            await c.close()

    run(main())


def test_async_for_and_consumer_timeout(tmp_path):
    async def main():
        async with logmq.aio.open(tmp_path / "d") as log:
            async with log.producer() as p:
                await p.send_batch("t", [(None, str(i).encode()) for i in range(1000)])
            c = log.consumer("t", auto_offset_reset="earliest", consumer_timeout_ms=200)
            vals = [r.value async for r in c]
            assert vals == [str(i).encode() for i in range(1000)]
            await c.close()

    run(main())


def test_group_commit_and_seek(tmp_path):
    async def main():
        async with logmq.aio.open(tmp_path / "d") as log:
            await log.create_topic("t")
            async with log.producer() as p:
                await p.send_batch("t", [(None, str(i).encode()) for i in range(10)])
            c = log.consumer("t", group="g", auto_offset_reset="earliest",
                             enable_auto_commit=False)
            recs = []
            while len(recs) < 10:
                for batch in (await c.getmany(timeout_ms=5000, max_records=4)).values():
                    assert len(batch) <= 4
                    recs.extend(batch)
            tp = TopicPartition("t", 0)
            assert await c.position(tp) == 10
            await c.commit({tp: 6})
            assert await c.committed(tp) == 6
            c.seek(tp, 2)
            assert [r.offset for r in await c.poll(timeout=5, max_records=2)] == [2, 3]
            await c.seek_to_committed()
            assert (await c.poll(timeout=5, max_records=1))[0].offset == 6
            await c.seek_to_beginning()
            assert (await c.poll(timeout=5, max_records=1))[0].offset == 0
            await c.seek_to_end()
            assert await c.poll(timeout=0.05) == []
            await c.seek_to_timestamp(0)
            assert (await c.poll(timeout=5, max_records=1))[0].offset == 0
            await c.close()
            # a new member of the group resumes from the commit
            c2 = log.consumer("t", group="g", auto_offset_reset="earliest")
            first = await c2.getone()
            assert first.offset == 6
            await c2.close()

    run(main())


def test_queue_receive_ack_nack(tmp_path):
    async def main():
        async with logmq.aio.open(tmp_path / "d") as log:
            await log.create_topic("jobs")
            async with log.producer() as p:
                for i in range(3):
                    await p.send("jobs", f"job-{i}".encode())
            q = log.queue("jobs", group="workers", max_attempts=5)
            recs = await q.receive(3, timeout=5)
            assert [r.value for r in recs] == [b"job-0", b"job-1", b"job-2"]
            await recs[0].ack()
            await recs[1].nack(delay=0)
            await q.ack_many([recs[2]])
            again = await q.receive(5, timeout=5)
            assert [(r.value, r.delivery_count) for r in again] == [(b"job-1", 2)]
            await again[0].ack()
            stats = await q.stats()
            assert (stats.depth, stats.in_flight, stats.acked) == (0, 0, 3)
            # an idle receive waits on the loop and is woken by a send
            task = asyncio.create_task(q.receive(1, timeout=10))
            await asyncio.sleep(0.01)
            assert not task.done()
            async with log.producer() as p:
                await p.send("jobs", b"late")
            late = await asyncio.wait_for(task, 10)
            assert [r.value for r in late] == [b"late"]
            await late[0].ack()
            await q.close()

    run(main())


def test_cancelled_receive_releases_what_it_got(tmp_path):
    async def main():
        async with logmq.aio.open(tmp_path / "d") as log:
            await log.create_topic("jobs")
            q = log.queue("jobs", group="w")
            task = asyncio.create_task(q.receive(1, timeout=30))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with log.producer() as p:
                await p.send("jobs", b"x")
            q2 = log.queue("jobs", group="w")
            got = await q2.receive(1, timeout=10)   # not stranded in q's lock
            assert [r.value for r in got] == [b"x"]
            await got[0].ack()
            await q.close()
            await q2.close()

    run(main())


def test_await_open_and_closed_errors(tmp_path):
    async def main():
        log = await logmq.aio.open(os.fspath(tmp_path / "d"))
        p = log.producer()
        await p.send("t", b"x")
        await p.close()
        with pytest.raises(BrokerClosedError):
            await p.send("t", b"y")
        await log.close()
        with pytest.raises(BrokerClosedError):
            log.producer()
        with logmq.open(tmp_path / "d") as sync:  # closed cleanly: the sync API opens it
            assert sync.end_offset(("t", 0)) == 1

    run(main())


def test_send_errors_reach_the_awaiter(tmp_path):
    async def main():
        async with logmq.aio.open(tmp_path / "d", auto_create_topics=False) as log:
            async with log.producer() as p:
                with pytest.raises(logmq.errors.UnknownTopicError):
                    await p.send("missing", b"x")
                await log.create_topic("t")
                # aiokafka's keyword spellings work as they do there
                md = await p.send_and_wait("t", value=b"v", key=b"k", partition=0,
                                           timestamp_ms=1_700_000_000_000, headers=[("h", b"")])
                assert (md.partition, md.timestamp) == (0, 1_700_000_000_000)
                with pytest.raises(logmq.errors.ConfigError):
                    p.send_nowait("t", b"v", timestamp=1, timestamp_ms=2)

    run(main())


def test_getone_of_given_partitions(tmp_path):
    async def main():
        async with logmq.aio.open(tmp_path / "d") as log:
            await log.create_topic("t", partitions=2)
            async with log.producer() as p:
                await p.send("t", b"p0", partition=0)
                await p.send("t", b"p1", partition=1)
            c = log.consumer("t", auto_offset_reset="earliest")
            assert (await c.getone(("t", 1))).value == b"p1"
            assert (await c.getone()).value == b"p0"
            await c.close()

    run(main())


def test_group_members_outnumbering_the_pool_share_partitions(tmp_path):
    """Joins block until all members rejoin: more members than pool threads must not stall."""

    async def main():
        async with logmq.aio.open(tmp_path / "d", workers=2) as log:
            await log.create_topic("t", partitions=4)
            async with log.producer() as p:
                await p.send_batch("t", [(f"k{i}".encode(), str(i).encode()) for i in range(400)])
            members = [log.consumer("t", group="g", auto_offset_reset="earliest",
                                    heartbeat_interval_ms=50, session_timeout_ms=5000,
                                    rebalance_timeout_ms=20_000) for _ in range(4)]
            seen: dict[int, set[bytes]] = {i: set() for i in range(4)}
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15

            def settled() -> bool:  # everything read, and the group balanced one each
                return (sum(map(len, seen.values())) >= 400
                        and all(len(m.assignment()) == 1 for m in members))

            async def run_member(i: int) -> None:
                c = members[i]
                while loop.time() < deadline and not settled():
                    for recs in (await c.getmany(timeout_ms=100)).values():
                        seen[i].update(r.value for r in recs)

            started = loop.time()
            await asyncio.gather(*(run_member(i) for i in range(4)))
            elapsed = loop.time() - started
            assignments = [m.assignment() for m in members]
            for m in members:
                await m.close()
            return seen, assignments, elapsed

    seen, assignments, elapsed = run(main())
    assert set().union(*seen.values()) == {str(i).encode() for i in range(400)}
    assert elapsed < 15, "members stalled waiting for each other"
    owned = [tp for a in assignments for tp in a]
    assert len(owned) == len(set(owned)) == 4 and all(len(a) == 1 for a in assignments)


def test_getmany_of_some_partitions_keeps_user_pauses(tmp_path):
    async def main():
        async with logmq.aio.open(tmp_path / "d") as log:
            await log.create_topic("t", partitions=3)
            async with log.producer() as p:
                for part in range(3):
                    await p.send("t", f"p{part}".encode(), partition=part)
            c = log.consumer("t", auto_offset_reset="earliest")
            c.pause(("t", 2))
            got = await c.getmany(("t", 0), timeout_ms=2000)
            assert [r.value for recs in got.values() for r in recs] == [b"p0"]
            assert c.paused() == {TopicPartition("t", 2)}
            rest = await c.getmany(timeout_ms=2000)
            assert [r.value for recs in rest.values() for r in recs] == [b"p1"]  # 2 paused
            c.resume(("t", 2))
            assert (await c.getone()).value == b"p2"
            await c.close()

    run(main())
