"""Encryption at rest, embedded: sealed batches on disk, opened for readers, keys and rotation."""

from __future__ import annotations

import glob
import json
import os
import time

import pytest

import logmq
from logmq.codec.batch import iter_batches, parse_header, validate_batch
from logmq.codec.records import decode_batch, encode_batch
from logmq.codec.seal import KEY_ENV, SEALED_MASK, KeyRing, Sealer, new_key, sealed_key_id
from logmq.errors import ConfigError, EncryptionKeyError

MARK = b"PLAINTEXT-MARKER"
SEALED = {"encryption": "aes-256-gcm"}


def key_file(path, keys: dict[str, str], active: str) -> str:
    with open(path, "w") as f:
        json.dump({"active": active, "keys": keys}, f)
    os.chmod(path, 0o600)
    return str(path)


@pytest.fixture
def keys(tmp_path):
    ks = {"k1": new_key(), "k2": new_key()}
    return ks, key_file(tmp_path / "keys.json", {"k1": ks["k1"]}, "k1")


def open_log(data, kf, **kw):
    return logmq.open(data, encryption_key_file=kf, cleaner_check_interval_ms=3_600_000, **kw)


def produce(log, topic, n, start=0, key=None):
    p = log.producer()
    for i in range(start, start + n):
        p.send(topic, MARK + b"-%d" % i, key=key(i) if key else b"k%d" % i, partition=0)
    p.flush()


def read_all(log, topic):
    end = log.end_offset((topic, 0))
    c = log.consumer(auto_offset_reset="earliest")
    c.assign([(topic, 0)])
    out = []
    deadline = time.monotonic() + 20
    while (not out or out[-1].offset < end - 1) and time.monotonic() < deadline:
        out += c.poll(timeout=0.2)
    c.close()
    return out


def stored_bytes(data, topic):
    return b"".join(open(f, "rb").read() for f in sorted(glob.glob(f"{data}/{topic}-0/*.log")))


def key_ids(data, topic):
    """The key id of every stored non-control batch, segment by segment."""
    out = []
    for f in sorted(glob.glob(f"{data}/{topic}-0/*.log")):
        raw = open(f, "rb").read()
        out.append([sealed_key_id(raw, pos, h) for pos, h in iter_batches(raw)
                    if not h.is_control])
    return out


# ---------------------------------------------------------------------- the format
def test_seal_open_roundtrip_keeps_header_and_checks_crc():
    ring = KeyRing({"k1": os.urandom(32)})
    s = Sealer(ring, None, "t-0")
    plain = encode_batch([(b"key", MARK), (None, b"v2")], base_offset=42,
                         timestamps=[1000, 2000])
    sealed = s.seal(plain)
    assert MARK not in sealed
    h, hp = validate_batch(sealed), parse_header(plain)  # the CRC covers the sealed bytes
    assert h.attributes == hp.attributes | SEALED_MASK
    assert (h.base_offset, h.last_offset_delta, h.record_count, h.max_timestamp) == (
        hp.base_offset, hp.last_offset_delta, hp.record_count, hp.max_timestamp)
    assert h.size == hp.size + s.overhead
    assert s.open(sealed) == plain  # byte for byte, CRC included
    assert s.seal(plain) != sealed  # a fresh nonce every time


def test_header_edits_and_other_keys_fail_with_a_typed_error():
    ring = KeyRing({"k1": os.urandom(32)})
    sealed = bytearray(Sealer(ring, None, "t-0").seal(encode_batch([(b"k", MARK)],
                                                                    base_offset=7)))
    moved = bytearray(sealed)
    moved[0:8] = (8).to_bytes(8, "big")  # the batch moved to another offset
    with pytest.raises(EncryptionKeyError, match="does not open"):
        Sealer(ring, None, "t-0").open(bytes(moved))
    other = KeyRing({"k1": os.urandom(32)})  # same id, wrong key
    with pytest.raises(EncryptionKeyError, match="wrong key"):
        Sealer(other, None, "t-0").open(bytes(sealed))
    with pytest.raises(EncryptionKeyError, match="no encryption key with id 'k1'"):
        Sealer(KeyRing({"k9": os.urandom(32)}), None, "t-0").open(bytes(sealed))
    with pytest.raises(EncryptionKeyError, match="no encryption key is configured"):
        Sealer(None, None, "t-0").open(bytes(sealed))


def test_key_file_and_env_parsing(tmp_path, caplog):
    good = new_key()
    ring = KeyRing.load(None, {KEY_ENV: f"new:{good}, old:{new_key()}"})
    assert ring is not None and ring.active == "new" and ring.key_ids == ["new", "old"]
    toml = tmp_path / "k.toml"
    toml.write_text(f'active = "b"\n[keys]\na = "{good}"\nb = "{new_key()}"\n')
    assert KeyRing.load(str(toml)).active == "b"  # type: ignore[union-attr]
    assert KeyRing.load(None, {}) is None
    for doc, msg in [({"keys": {"a": "!!"}}, "not valid base64"),
                     ({"keys": {"a": "AAAA"}}, "AES-256 needs 32"),
                     ({"keys": {}}, "expected"),
                     ({"active": "zz", "keys": {"a": good}}, "not among the keys")]:
        p = tmp_path / "bad.json"
        p.write_text(json.dumps(doc))
        with pytest.raises(ConfigError, match=msg):
            KeyRing.load(str(p))
    loose = tmp_path / "loose.json"
    loose.write_text(json.dumps({"keys": {"a": good}}))
    os.chmod(loose, 0o644)
    with caplog.at_level("WARNING", logger="logmq.storage"):
        KeyRing.load(str(loose))
    assert "chmod 600" in caplog.text
    with pytest.raises(ConfigError, match="cannot read"):
        KeyRing.load(str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="ID:BASE64"):
        KeyRing.load(None, {KEY_ENV: "nokey"})


# ---------------------------------------------------------------------- embedded
def test_records_unreadable_on_disk_readable_embedded(tmp_path, keys):
    _, kf = keys
    data = str(tmp_path / "d")
    with open_log(data, kf) as log:
        log.create_topic("s", 1, SEALED)
        log.create_topic("plain", 1)
        produce(log, "s", 200)
        produce(log, "plain", 5)
        got = read_all(log, "s")
        assert [r.value for r in got] == [MARK + b"-%d" % i for i in range(200)]
        assert log.offsets_for_times({("s", 0): 0})[logmq.TopicPartition("s", 0)].offset == 0
    assert MARK not in stored_bytes(data, "s")
    assert MARK in stored_bytes(data, "plain")  # the grep would find it
    for f in glob.glob(f"{data}/**", recursive=True):  # nor in any other file (LMDB, indexes)
        if os.path.isfile(f) and "/plain-0/" not in f:
            assert MARK not in open(f, "rb").read(), f
    assert {k for seg in key_ids(data, "s") for k in seg} == {"k1"}
    from logmq.cli.inspect import verify_partition

    reports = verify_partition(f"{data}/s-0", deep=True)  # no key needed to verify
    assert reports and all(not r.problems for r in reports)
    assert sum(r.records for r in reports) == 200


def test_without_the_key_offsets_work_and_reads_and_appends_are_refused(tmp_path, keys):
    ks, kf = keys
    data = str(tmp_path / "d")
    with open_log(data, kf) as log:
        log.create_topic("s", 1, dict(SEALED, **{"retention.ms": 1000}))
        produce(log, "s", 50)
        log.partition_log("s", 0).roll()
        produce(log, "s", 10, start=50)
    with logmq.open(data, cleaner=False) as log:  # no key at all
        assert log.offsets(("s", 0)) == (0, 60)
        c = log.consumer(auto_offset_reset="earliest")
        c.assign([("s", 0)])
        with pytest.raises(EncryptionKeyError, match="no encryption key is configured"):
            c.poll(timeout=1)
        with pytest.raises(EncryptionKeyError):
            log.producer().send("s", b"x", partition=0).result(10)
        assert log.end_offset(("s", 0)) == 60  # nothing was appended
        from logmq.broker.cleaner import Cleaner

        stats = Cleaner(log.logs).run_once(now_ms=int(time.time() * 1000) + 10_000)
        assert stats["segments_deleted"] == 1  # retention needs no key
        assert log.offsets(("s", 0)) == (50, 60)
    wrong = key_file(tmp_path / "wrong.json", {"k1": new_key()}, "k1")
    with open_log(data, wrong, cleaner=False) as log:
        with pytest.raises(EncryptionKeyError, match="wrong key"):
            log.read_batches(("s", 0), 50)
    with open_log(data, kf) as log:
        assert [r.value for r in read_all(log, "s")] == [MARK + b"-%d" % i
                                                         for i in range(50, 60)]


def test_turning_encryption_off_is_refused_on_later_reseals_plain_segments(tmp_path, keys):
    _, kf = keys
    data = str(tmp_path / "d")
    with open_log(data, kf) as log:
        log.create_topic("t", 1)
        produce(log, "t", 30)
        log.partition_log("t", 0).roll()
        log.alter_topic_config("t", SEALED)
        produce(log, "t", 30, start=30)
        log.partition_log("t", 0).roll()
        with pytest.raises(ConfigError, match="cannot be turned off"):
            log.alter_topic_config("t", {"encryption": "none"})
        assert key_ids(data, "t")[0][0] is None and MARK in stored_bytes(data, "t")
        stats = log.cleaner.run_once()
        assert stats["segments_resealed"] == 1
        assert MARK not in stored_bytes(data, "t")
        assert all(k == "k1" for seg in key_ids(data, "t") for k in seg)
        assert [r.value for r in read_all(log, "t")] == [MARK + b"-%d" % i for i in range(60)]
        assert log.cleaner.run_once()["segments_resealed"] == 0  # the checkpoint holds


@pytest.mark.parametrize("how", ["topic key id", "key file reload"])
def test_rotation_while_producing_and_consuming(tmp_path, keys, how):
    """A live rotation (the topic's encryption.key.id, or a new active key in the key file
    read again) with a producer and a consumer running; the cleaner re-seals the old
    segments; then the old key can go."""
    import threading

    ks, _ = keys
    kf = key_file(tmp_path / "keys.json", ks if how == "topic key id" else {"k1": ks["k1"]},
                  "k1")
    data = str(tmp_path / "d")
    total = 3000
    with open_log(data, kf) as log:
        log.create_topic("r", 1, dict(SEALED, **{"segment.bytes": 16 * 1024}))
        seen: list[bytes] = []
        err: list[BaseException] = []

        def consume() -> None:
            try:
                c = log.consumer(auto_offset_reset="earliest")
                c.assign([("r", 0)])
                deadline = time.monotonic() + 60
                while len(seen) < total and time.monotonic() < deadline:
                    seen.extend(r.value for r in c.poll(timeout=0.2))
                c.close()
            except BaseException as e:  # surfaced below
                err.append(e)

        t = threading.Thread(target=consume)
        t.start()
        p = log.producer()
        for i in range(total):
            if i == total // 2 and how == "topic key id":
                log.alter_topic_config("r", {"encryption.key.id": "k2"})
                log.cleaner.wake()  # re-seal in the background while both keep going
            elif i == total // 2:
                key_file(tmp_path / "keys.json", ks, "k2")
                assert log.reload_encryption_keys() == ["k1", "k2"]  # wakes the cleaner
            p.send("r", MARK + b"-%d" % i, key=b"k", partition=0)
            if i % 100 == 0:
                p.flush()
        p.flush()
        t.join(60)
        assert not err and seen == [MARK + b"-%d" % i for i in range(total)]
        log.partition_log("r", 0).roll()
        log.cleaner.run_once()
        ids = key_ids(data, "r")
        assert len(ids) > 4 and all(k == "k2" for seg in ids for k in seg)
    only_new = key_file(tmp_path / "new.json", {"k2": ks["k2"]}, "k2")
    with open_log(data, only_new) as log:
        assert len(read_all(log, "r")) == total


def test_compaction_keeps_a_sealed_topic_sealed(tmp_path, keys):
    _, kf = keys
    data = str(tmp_path / "d")
    with open_log(data, kf) as log:
        log.create_topic("c", 1, dict(SEALED, **{"cleanup.policy": "compact"}))
        for rnd in range(4):  # 10 keys, 4 values each, batches mixing keys
            produce(log, "c", 10, start=rnd * 10, key=lambda i: b"key-%d" % (i % 10))
        p = log.producer()
        p.send_batch("c", [(b"key-%d" % i, MARK + b"-late") for i in (1, 2)] +
                     [(b"key-%d" % i, MARK + b"-new") for i in (3, 4)], partition=0)
        log.partition_log("c", 0).roll()
        stats = log.cleaner.run_once(force=True)
        assert stats["records_removed"] >= 30
        latest = {r.key: r.value for r in read_all(log, "c")}
        assert len(latest) == 10 and latest[b"key-3"] == MARK + b"-new"
        assert latest[b"key-9"] == MARK + b"-39"
    raw = stored_bytes(data, "c")
    assert MARK not in raw
    assert all(k == "k1" for seg in key_ids(data, "c") for k in seg)


def test_mirror_keeps_data_sealed(tmp_path, keys):
    from logmq.mirror import mirror

    _, kf = keys
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    with open_log(src, kf) as a, open_log(dst, kf) as b:
        a.create_topic("m", 1, SEALED)
        produce(a, "m", 40)
        report = mirror(a, b, topics=["m"], copy_groups=False)
        assert report.total_copied == 40
        assert b.topic_config("m")["encryption"] == "aes-256-gcm"
        assert [r.value for r in read_all(b, "m")] == [MARK + b"-%d" % i for i in range(40)]
    assert MARK not in stored_bytes(dst, "m")


def test_env_keys_and_native_and_pure_paths_seal(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, f"e1:{new_key()}")
    data = str(tmp_path / "d")
    with logmq.open(data, cleaner=False) as log:
        log.create_topic("e", 1, SEALED)
        p = log.producer()
        p.send_batch("e", [(b"k", MARK)] * 5, partition=0)  # the bulk (native) encoder
        p.send("e", MARK, partition=0).result(10)
        log.append_batches(("e", 0), encode_batch([(b"k", MARK)]))  # raw batches
        assert len(read_all(log, "e")) == 7
        raw = log.read_batches(("e", 0), 0)
        assert MARK in raw  # read_batches returns opened batches
        assert all(decode_batch(raw, pos)[1] for pos, _ in iter_batches(raw))
    assert MARK not in stored_bytes(data, "e")
    assert all(k == "e1" for seg in key_ids(data, "e") for k in seg)


def test_streams_and_timestamp_lookups_on_a_sealed_topic(tmp_path, keys):
    from logmq.server.admin import max_timestamp_offset

    _, kf = keys
    data = str(tmp_path / "d")
    with open_log(data, kf) as log:
        log.create_topic("acc", 1, SEALED)
        for i in range(5):
            log.append_to_stream("acc", "a", [MARK + b"-a%d" % i])
            log.append_to_stream("acc", "b", [MARK + b"-b%d" % i])
        p = log.producer()  # a plain producer's raw appends, indexed by catching up
        p.send("acc", MARK + b"-a5", key=b"a", partition=0, timestamp=4_000_000_000_000)
        p.flush()
        assert [e.value for e in log.read_stream("acc", "a")] == [
            MARK + b"-a%d" % i for i in range(6)]
        assert max_timestamp_offset(log.partition_log("acc", 0)) == (4_000_000_000_000, 10)
        tp = logmq.TopicPartition("acc", 0)
        assert log.offsets_for_times({tp: 3_999_999_999_999})[tp].offset == 10
    with open_log(data, kf) as log:  # reopened: the index is checked against the log
        assert [e.value for e in log.read_stream("acc", "b")][-1] == MARK + b"-b4"
    assert MARK not in stored_bytes(data, "acc")


def test_a_broker_default_is_pinned_on_the_topics_it_created(tmp_path, keys):
    _, kf = keys
    data = str(tmp_path / "d")
    with logmq.open(data, encryption_key_file=kf, cleaner=False,
                    encryption="aes-256-gcm") as log:
        produce(log, "auto", 5)  # auto-created under the default
        assert log.describe_topic("auto").overrides["encryption"] == "aes-256-gcm"
    with open_log(data, kf) as log:  # the default is gone: the topic stays sealed
        assert log.topic_config("auto")["encryption"] == "aes-256-gcm"
        assert [r.value for r in read_all(log, "auto")] == [MARK + b"-%d" % i for i in range(5)]
        log.create_topic("later", 1)
        assert log.topic_config("later")["encryption"] == "none"
    assert MARK not in stored_bytes(data, "auto")


def test_cli_verify_and_dump_need_no_key(tmp_path, keys):
    from click.testing import CliRunner

    from logmq.cli import cli

    _, kf = keys
    data = str(tmp_path / "d")
    with open_log(data, kf) as log:
        log.create_topic("s", 1, SEALED)
        produce(log, "s", 20)
    runner = CliRunner()
    ok = runner.invoke(cli, ["verify", "--deep", "--data", data])
    assert ok.exit_code == 0, ok.output
    seg = sorted(glob.glob(f"{data}/s-0/*.log"))[0]
    out = runner.invoke(cli, ["dump", seg, "--records"])
    assert out.exit_code == 0, out.output
    assert "sealed(key=k1)" in out.output and "records sealed" in out.output
    assert MARK.decode() not in out.output


_RESEAL_CHILD = """
import sys
import logmq
from logmq.broker.cleaner import Cleaner
with logmq.open(sys.argv[1], cleaner=False, encryption_key_file=sys.argv[2]) as log:
    stats = Cleaner(log, max_bytes_per_sec=None).run_once()
    assert not stats["errors"], stats
print("completed")
"""


@pytest.mark.parametrize("point", ["cleaned-written", "committed", "installed-log",
                                   "deleted-old"])
def test_sigkill_mid_reseal_keeps_every_record(tmp_path, keys, point):
    import subprocess
    import sys

    ks, _ = keys
    data = str(tmp_path / "d")
    old = key_file(tmp_path / "old.json", ks, "k1")
    with open_log(data, old, cleaner=False) as log:
        log.create_topic("z", 1, dict(SEALED, **{"segment.bytes": 4096}))
        produce(log, "z", 120)
        log.partition_log("z", 0).roll()
        want = [(r.offset, r.value) for r in read_all(log, "z")]
    new = key_file(tmp_path / "new.json", ks, "k2")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, LOGMQ_CRASH_POINT=point,
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", _RESEAL_CHILD, data, new], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == -9, (r.returncode, r.stdout, r.stderr)  # killed at the point
    with open_log(data, new, cleaner=False) as log:
        assert [(r.offset, r.value) for r in read_all(log, "z")] == want
        from logmq.broker.cleaner import Cleaner

        Cleaner(log.logs).run_once()
        assert [(r.offset, r.value) for r in read_all(log, "z")] == want
    assert all(k == "k2" for seg in key_ids(data, "z") for k in seg)
    assert MARK not in stored_bytes(data, "z")
