"""Log lines: JSON that parses, rate-limited repeats, and the events operators must see."""

from __future__ import annotations

import glob
import io
import json
import logging
import os

import pytest

import logmq
from logmq.ops.logs import JsonFormatter, RateLimit, configure_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def test_json_lines_parse_with_structured_fields(restore_logging):
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    lg = logging.getLogger("logmq.test")
    lg.debug("plain")
    lg.info("produced %d records", 3, extra={"topic": "t", "partition": 1})
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        lg.exception("handler failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    objs = [json.loads(x) for x in lines]
    assert [o["level"] for o in objs] == ["DEBUG", "INFO", "ERROR"]
    assert objs[1]["message"] == "produced 3 records"
    assert objs[1]["topic"] == "t" and objs[1]["partition"] == 1
    assert objs[1]["logger"] == "logmq.test" and objs[1]["time"].endswith("Z")
    assert "ValueError: boom" in objs[2]["exception"]


def test_bad_level_or_format_is_refused():
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml")
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "text")


def test_repeated_warnings_are_rate_limited():
    out = io.StringIO()
    h = logging.StreamHandler(out)
    h.setFormatter(JsonFormatter())
    limit = RateLimit(burst=3, window=3600)
    h.addFilter(limit)
    lg = logging.getLogger("logmq.test.flood")
    lg.addHandler(h)
    lg.propagate = False
    try:
        for i in range(50):
            lg.warning("bad request from %s", f"10.0.0.{i}")
        lg.error("an error is never dropped")
        lg.error("an error is never dropped")
        assert len(out.getvalue().splitlines()) == 3 + 2
        limit._seen[("logmq.test.flood", "bad request from %s")][0] -= 7200  # window over
        lg.warning("bad request from %s", "x")
        last = json.loads(out.getvalue().splitlines()[-1])
        assert last["message"] == "bad request from x (47 similar messages suppressed)"
    finally:
        lg.removeHandler(h)
        lg.propagate = True


def test_recovery_cut_is_a_warning(tmp_path, caplog):
    data = str(tmp_path / "d")
    with logmq.open(data) as log:
        log.create_topic("t")
        with log.producer() as p:
            for _ in range(10):
                p.send("t", b"x" * 50)
    os.unlink(os.path.join(data, ".clean_shutdown"))
    seg = glob.glob(os.path.join(data, "t-0", "*.log"))[0]
    with open(seg, "ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x0a" + b"\xff" * 40)  # a torn batch
    with caplog.at_level(logging.WARNING, logger="logmq"), logmq.open(data) as log:
        assert log.end_offset(("t", 0)) == 10
        assert log.metrics()["storage"]["recovery_bytes_truncated"] == 48
    msgs = [r for r in caplog.records if r.name == "logmq.storage"]
    assert len(msgs) == 1 and msgs[0].levelno == logging.WARNING
    assert "partition t-0: recovery cut bytes" in msgs[0].getMessage()
    assert "(48 bytes" in msgs[0].getMessage()


def test_worker_failures_dead_letters_and_callbacks_are_logged(tmp_path, caplog):
    with logmq.open(tmp_path / "d") as log, caplog.at_level(logging.WARNING, logger="logmq"):
        log.create_topic("jobs")
        with log.producer() as p:
            p.send("jobs", b"poison")

            def broken(_fut: object) -> None:
                raise RuntimeError("callback bug")

            p.send("jobs", b"ok").add_done_callback(broken)
            p.flush()

        def handler(rec: logmq.QueueRecord) -> None:
            if rec.value == b"poison":
                raise KeyError("no such customer")

        w = logmq.Worker(log, "jobs", handler, concurrency=1, max_attempts=1)
        w.start()
        try:
            from ops_util import wait_for

            wait_for(lambda: any("dead-lettered" in r.getMessage() for r in caplog.records),
                     30, "the poison record to be dead-lettered")
        finally:
            w.stop()
    fail = next(r for r in caplog.records if r.name == "logmq.worker")
    assert fail.levelno == logging.ERROR and "jobs-0@0" in fail.getMessage()
    assert (fail.topic, fail.partition, fail.offset) == ("jobs", 0, 0)
    assert fail.exc_info is not None
    dead = next(r for r in caplog.records if r.name == "logmq.queues")
    assert dead.levelno == logging.WARNING and "jobs-0@0" in dead.getMessage()
    cb = next(r for r in caplog.records if r.name == "logmq.producer")
    assert "callback" in cb.getMessage() and cb.exc_info is not None
