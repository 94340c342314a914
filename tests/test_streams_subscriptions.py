"""Catch-up subscriptions (sync and asyncio) and snapshots."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from logmq.errors import ConfigError


def drain(sub, want: int, deadline_s: float = 10.0) -> list:
    got: list = []
    deadline = time.monotonic() + deadline_s
    while len(got) < want and time.monotonic() < deadline:
        got.extend(sub.poll(0.2))
    return got


def test_subscribe_all_catches_up_then_goes_live(log):
    log.create_topic("t", partitions=3)
    for i in range(30):
        log.append_to_stream("t", f"k{i % 7}", [b"%d" % i])
    sub = log.subscribe_all("t")
    got = drain(sub, 30)
    assert len(got) == 30

    def later() -> None:
        for i in range(30, 60):
            log.append_to_stream("t", f"k{i % 7}", [b"%d" % i])

    th = threading.Thread(target=later)
    th.start()
    got += drain(sub, 30)
    th.join()
    sub.stop()
    assert sorted(int(e.value) for e in got) == list(range(60))  # no gap, no duplicate
    for p in range(3):  # per partition in log order
        offs = [e.offset for e in got if e.partition == p]
        assert offs == sorted(offs) and len(set(offs)) == len(offs)
    # per stream, versions in order
    for k in range(7):
        assert [e.version for e in got if e.key == b"k%d" % k] == list(
            range(len([i for i in range(60) if i % 7 == k])))


def test_checkpoint_restart_is_exact(log):
    for i in range(25):
        log.append_to_stream("t", "k", [b"%d" % i])
    sub = log.subscribe_all("t", batch_size=10)
    first = sub.poll(1)
    assert [e.value for e in first] == [b"%d" % i for i in range(10)]
    cp = sub.checkpoint
    sub.stop()
    sub2 = log.subscribe_all("t", cp)
    rest = drain(sub2, 15)
    sub2.stop()
    assert [e.value for e in rest] == [b"%d" % i for i in range(10, 25)]
    end = log.subscribe_all("t", "end")
    assert end.poll(0) == []
    end.stop()
    with pytest.raises(ConfigError):
        log.subscribe_all("t", "bogus")


def test_group_checkpoint(log):
    for i in range(5):
        log.append_to_stream("t", "k", [b"%d" % i])
    sub = log.subscribe_all("t", group="proj")
    assert len(drain(sub, 5)) == 5
    sub.commit()
    sub.stop()
    log.append_to_stream("t", "k", [b"5"])
    sub = log.subscribe_all("t", group="proj")
    assert [e.value for e in drain(sub, 1)] == [b"5"]
    sub.stop()
    # the same offsets a Kafka group would have committed
    c = log.consumer("t", group="proj")
    assert c.committed(("t", 0)) == 5
    c.close(commit=False)


def test_ops_are_hidden_unless_asked(log):
    log.append_to_stream("t", "k", [b"0", b"1"])
    log.streams.truncate_before("t", "k", 1)
    sub = log.subscribe_all("t")
    assert [e.value for e in sub.poll(1)] == [b"0", b"1"]
    sub.stop()
    sub = log.subscribe_all("t", include_ops=True)
    assert len(sub.poll(1)) == 3
    sub.stop()


def test_stream_subscription_iterates_live(log):
    log.append_to_stream("t", "k", [b"0", b"1"])
    log.append_to_stream("t", "other", [b"x"])
    got: list = []
    sub = log.streams.subscribe_stream("t", "k", 1)

    def consume() -> None:
        for e in sub:
            got.append(e)
            if len(got) == 3:
                break

    th = threading.Thread(target=consume)
    th.start()
    log.append_to_stream("t", "k", [b"2"], expected_version=1)
    log.append_to_stream("t", "other", [b"y"])
    log.append_to_stream("t", "k", [b"3"], expected_version=2)
    th.join(10)
    sub.stop()
    assert [(e.version, e.value) for e in got] == [(1, b"1"), (2, b"2"), (3, b"3")]
    assert sub.checkpoint == 4


def test_stop_ends_a_blocked_iteration(log):
    log.create_topic("t")
    sub = log.subscribe_all("t")
    done = threading.Event()

    def run() -> None:
        for _ in sub:
            pass
        done.set()

    th = threading.Thread(target=run)
    th.start()
    sub.stop()
    assert done.wait(5)
    th.join(5)


def test_async_subscriptions_do_not_block_the_loop(log):
    for i in range(3):
        log.append_to_stream("t", "k", [b"%d" % i])

    async def main() -> tuple[list, list, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        tick = asyncio.create_task(ticker())
        all_sub = log.streams.subscribe_all_async("t")
        one = log.streams.subscribe_stream_async("t", "k", 2)
        got_all: list = []
        got_one: list = []

        async def consume(sub, out, n) -> None:
            async for e in sub:
                out.append(e.value)
                if len(out) == n:
                    break

        tasks = [asyncio.create_task(consume(all_sub, got_all, 5)),
                 asyncio.create_task(consume(one, got_one, 3))]
        deadline = time.monotonic() + 10
        while (len(got_all) < 3 or len(got_one) < 1) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)  # until both caught up: what follows is live
        before = ticks
        await asyncio.to_thread(log.append_to_stream, "t", "k", [b"3", b"4"])
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        all_sub.stop()
        one.stop()
        stop.set()
        await tick
        return got_all, got_one, ticks - before

    got_all, got_one, ticked = asyncio.run(main())
    assert got_all == [b"0", b"1", b"2", b"3", b"4"]
    assert got_one == [b"2", b"3", b"4"]
    assert ticked >= 1


def test_snapshots_load_latest_plus_events_after(log):
    snaps = log.streams.snapshots("acc")
    assert snaps.load("a").snapshot is None
    for i in range(5):
        log.append_to_stream("acc", "a", [b"+%d" % i])
    snaps.save("a", 2, b"state@2")
    snaps.save("a", 3, b"state@3")
    for i in range(5, 7):
        log.append_to_stream("acc", "a", [b"+%d" % i])
    loaded = snaps.load("a")
    assert loaded.snapshot is not None and loaded.snapshot.state == b"state@3"
    assert [e.version for e in loaded.events] == [4, 5, 6]
    assert loaded.version == 6
    assert log.topic_config("acc.snapshots")["cleanup.policy"] == "compact"
    with pytest.raises(ConfigError):
        snaps.save("a", 99, b"future")


def test_subscribe_all_gives_plain_producer_records_their_index_version(log):
    log.append_to_stream("t", "k", [b"s0"])
    with log.producer() as p:
        p.send("t", b"p1", key=b"k").result()
        p.send("t", b"n", key=None).result()
    sub = log.subscribe_all("t")
    assert [(e.value, e.version) for e in sub.poll(1)] == [(b"s0", 0), (b"p1", 1), (b"n", None)]
    sub.stop()
