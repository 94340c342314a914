"""The import-layer contract: logmq's modules form no cycle and point one way.

Every import counts: module level, inside functions (lazy) and under ``TYPE_CHECKING``, since
each one is a dependency a reader has to follow and a cycle waiting to bite at import time.
Layers, lowest first (a module may import its own layer or any lower one):

    base      errors, types, config, kafka_codes, clock  (no logmq imports but each other)
    codec     logmq.codec, logmq.protocol          (sans-I/O: bytes in, values out)
    storage   logmq.storage                        (segments, partition logs, LogManager)
    services  logmq.broker.* (not broker.broker)  (producer, consumer, groups, queues...)
    facade    logmq.broker.broker, logmq           (Broker / logmq.open wires the services)
    surfaces  server, cli, ops, aio, testing, wire_client

A new module must be given a layer here (the test names it otherwise).
"""

from __future__ import annotations

import ast
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "logmq")

LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["logmq.errors", "logmq.types", "logmq.config", "logmq.config_load", "logmq.config_parsers",
              "logmq.kafka_codes", "logmq.clock"]),
    ("codec", ["logmq.codec", "logmq.protocol"]),
    ("storage", ["logmq.storage"]),
    # ops.figures/ops.stats read the services' state for log.metrics() and /metrics: the
    # facade's metrics() needs them below it
    ("services", ["logmq.broker", "logmq.streams", "logmq.ops.figures", "logmq.ops.stats"]),
    ("facade", ["logmq.broker.broker", "logmq", "logmq.cluster"]),  # cluster: kafka:// beside it
    ("surfaces", ["logmq.server", "logmq.cli", "logmq.ops", "logmq.aio", "logmq.testing",
                  "logmq.wire_client", "logmq.client", "logmq.eventsourcing", "logmq.metrics",
                  "logmq.mirror"]),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}


def layer_of(module: str) -> str | None:
    """The layer of the longest matching prefix (``logmq.broker.broker`` beats ``logmq.broker``)."""
    best: tuple[int, str] | None = None
    for name, prefixes in LAYERS:
        for p in prefixes:
            if module == p or module.startswith(p + "."):
                if p == "logmq" and module != "logmq":
                    continue  # the root package itself only, not everything under it
                if best is None or len(p) > best[0]:
                    best = (len(p), name)
    return None if best is None else best[1]


def discover() -> dict[str, str]:
    """Module name -> file path for every .py under logmq/."""
    mods: dict[str, str] = {}
    base = os.path.dirname(ROOT)
    for dirpath, _dirs, files in os.walk(ROOT):
        for f in files:
            if not f.endswith((".py", ".pyx")):  # .pyx: the compiled core is a module too
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), base).rsplit(".", 1)[0].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            mods[".".join(rel)] = os.path.join(dirpath, f)
    return mods


def imports_of(module: str, path: str, mods: dict[str, str]) -> set[str]:
    """logmq modules ``module`` imports anywhere in its file (``from p import sub`` -> p.sub)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if path.endswith(".pyx"):  # Cython is not Python syntax: its logmq imports by pattern
        for inc in re.findall(r'^include\s+"([^"]+)"', text, re.M):  # included .pxi count too
            with open(os.path.join(os.path.dirname(path), inc), encoding="utf-8") as fh:
                text += fh.read()
        found = re.findall(r"^\s*(?:from|import)\s+(logmq[\w.]*)", text, re.M)
        return {_existing(n, mods) for n in found} - {module}
    tree = ast.parse(text, path)
    is_pkg = path.endswith("__init__.py")
    package = module if is_pkg else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "logmq" or a.name.startswith("logmq."):
                    out.add(_existing(a.name, mods))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                src = ".".join(parts + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            if not (src == "logmq" or src.startswith("logmq.")):
                continue
            for a in node.names:
                sub = f"{src}.{a.name}"
                out.add(sub if sub in mods else _existing(src, mods))
    out.discard(module)
    return out


def _existing(name: str, mods: dict[str, str]) -> str:
    while name not in mods and "." in name:
        name = name.rpartition(".")[0]
    return name


def graph() -> dict[str, set[str]]:
    mods = discover()
    return {m: imports_of(m, p, mods) for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(g):
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in g:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_every_module_has_a_layer():
    missing = sorted(m for m in discover() if layer_of(m) is None)
    assert not missing, f"give these modules a layer in tests/test_layers.py: {missing}"


def test_no_import_cycle_counting_lazy_and_type_checking_imports():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_point_down_the_layers():
    bad = []
    for mod, deps in sorted(graph().items()):
        lm = layer_of(mod)
        for d in sorted(deps):
            ld = layer_of(d)
            if lm is not None and ld is not None and RANK[ld] > RANK[lm]:
                bad.append(f"{mod} ({lm}) imports {d} ({ld})")
    assert not bad, "imports from a lower layer to a higher one:\n" + "\n".join(bad)


@pytest.mark.parametrize("src,expect_cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
])
def test_the_cycle_finder_finds_cycles(src, expect_cycle):
    assert bool(cycles(src)) is expect_cycle


def test_the_import_scanner_sees_lazy_and_type_checking_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from typing import TYPE_CHECKING\n"
                 "if TYPE_CHECKING:\n    from logmq.broker.broker import Broker\n"
                 "def f():\n    from logmq.storage import log\n")
    mods = {"logmq.broker.broker": "", "logmq.storage": "", "logmq.storage.log": "",
            "logmq.x.m": str(f)}
    assert imports_of("logmq.x.m", str(f), mods) == {"logmq.broker.broker", "logmq.storage.log"}


GENERATED = {"logmq.protocol._schemas", "logmq.kafka_codes"}
MAX_LINES = 650


def test_no_hand_written_module_over_650_lines():
    big = []
    for mod, path in sorted(discover().items()):
        if mod in GENERATED:
            continue
        with open(path, encoding="utf-8") as fh:
            n = sum(1 for _ in fh)
        if n > MAX_LINES:
            big.append(f"{mod}: {n} lines")
    assert not big, f"split these along their seams (limit {MAX_LINES}): {big}"
