"""Committed-offset stores: the same contract for memory and LMDB, and LMDB durability."""

from __future__ import annotations

import lmdb
import pytest

from logmq.broker.groups import GroupCoordinator, LmdbOffsetStore, MemoryOffsetStore
from logmq.broker.groups.offsets import OffsetStore


def open_env(path) -> lmdb.Environment:
    return lmdb.open(str(path), max_dbs=32, map_size=1 << 26, subdir=True)


@pytest.fixture(params=["memory", "lmdb"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryOffsetStore()
        return
    env = open_env(tmp_path / "meta")
    yield LmdbOffsetStore(env)
    env.close()


def test_protocol_conformance(store):
    assert isinstance(store, OffsetStore)


def test_delete_partitions_keeps_the_rest(store):
    store.commit("g", {("t", 0): (1, None), ("t", 1): (2, None), ("u", 0): (3, "m")})
    store.commit("h", {("t", 0): (9, None)})
    store.delete_partitions("g", [("t", 0), ("u", 0), ("nope", 5)])
    assert store.fetch("g", None) == {("t", 1): (2, None)}
    assert store.fetch("h", None) == {("t", 0): (9, None)}  # another group's row stays


def test_commit_fetch_roundtrip(store):
    store.commit("g", {("t", 0): (10, None), ("t", 1): (11, ""), ("u", 7): (3, "héllo")})
    assert store.fetch("g", None) == {("t", 0): (10, None), ("t", 1): (11, ""),
                                      ("u", 7): (3, "héllo")}
    # None and "" stay distinct; missing partitions are simply absent.
    assert store.fetch("g", [("t", 1), ("t", 0), ("t", 9), ("nope", 0)]) == {
        ("t", 1): (11, ""), ("t", 0): (10, None)}
    store.commit("g", {("t", 0): (12, "m")})
    assert store.fetch("g", [("t", 0)]) == {("t", 0): (12, "m")}
    assert store.fetch("other", None) == {}


def test_groups_are_isolated_by_exact_name(store):
    for g in ("a", "ab", "a.b", "b"):
        store.commit(g, {("t", 0): (len(g), None)})
    assert store.groups() == ["a", "a.b", "ab", "b"]
    assert store.fetch("a", None) == {("t", 0): (1, None)}
    store.delete_group("a")
    assert store.groups() == ["a.b", "ab", "b"]
    assert store.fetch("ab", None) == {("t", 0): (2, None)}
    store.delete_group("missing")


def test_delete_topic(store):
    store.commit("g1", {("t", 0): (1, None), ("tt", 0): (2, None)})
    store.commit("g2", {("t", 3): (1, None)})
    store.delete_topic("t")
    assert store.fetch("g1", None) == {("tt", 0): (2, None)}
    assert store.fetch("g2", None) == {}
    assert store.groups() == ["g1"]


def test_large_and_negative_values(store):
    store.commit("g", {("t", 2**31 - 1): (2**63 - 1, None), ("t", 0): (-1, "x" * 5000)})
    assert store.fetch("g", None) == {("t", 2**31 - 1): (2**63 - 1, None),
                                      ("t", 0): (-1, "x" * 5000)}


def test_lmdb_rejects_nul_in_names(tmp_path):
    env = open_env(tmp_path / "m")
    s = LmdbOffsetStore(env)
    with pytest.raises(ValueError):
        s.commit("a\x00b", {("t", 0): (1, None)})
    with pytest.raises(ValueError):
        s.commit("g", {("t\x00", 0): (1, None)})
    env.close()


def test_lmdb_survives_reopen(tmp_path):
    path = tmp_path / "meta"
    env = open_env(path)
    coord = GroupCoordinator(LmdbOffsetStore(env))
    coord.commit_offsets("g", -1, "", {("t", 0): (42, "meta"), ("t", 1): (7, None)})
    coord.commit_offsets("h", -1, "", {("u", 0): (1, "")})
    coord.close()
    env.close()

    env = open_env(path)
    coord = GroupCoordinator(LmdbOffsetStore(env))
    assert coord.fetch_offsets("g", None) == {("t", 0): (42, "meta"), ("t", 1): (7, None)}
    assert coord.fetch_offsets("h", [("u", 0)]) == {("u", 0): (1, "")}
    assert coord.list_groups() == [("g", "consumer", "Empty"), ("h", "consumer", "Empty")]
    assert coord.delete_groups(["g"]) == {"g": None}
    coord.close()
    env.close()

    env = open_env(path)
    assert LmdbOffsetStore(env).groups() == ["h"]
    env.close()


def test_lmdb_bad_commit_writes_nothing(tmp_path):
    """One bad partition in a commit leaves none of its partitions behind."""
    env = open_env(tmp_path / "m")
    s = LmdbOffsetStore(env)
    with pytest.raises(ValueError):
        s.commit("g", {("t", 0): (1, None), ("t", 1): ("not an int", None)})
    assert s.fetch("g", None) == {}
    env.close()
