"""Every Python snippet in README.md runs, twice in a row, in a fresh directory.

Twice, because a reader runs a quick start again: a snippet that creates a topic without
``exist_ok`` works once and then fails. A snippet is marked with an HTML comment on the line
before its fence:

- ``<!-- readme-test: skip (why) -->``: not run (a fragment); the reason is required.
- ``<!-- readme-test: server -->``: runs with a logmq server on a free port, its
  ``127.0.0.1:9092`` replaced by that address.
- ``<!-- readme-test: pytest -->``: a test module for the pytest plugin, run by pytest.
- ``<!-- readme-test: quix -->``: the same, needing quixstreams, which pins an older
  confluent-kafka than the test suite's: ``.ci/step-quix.sh`` runs it in its own venv.
- no comment: a plain script, run with ``python`` in an empty directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytest_plugins = ["pytester"]

_FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_MARK = re.compile(r"<!--\s*readme-test:\s*(\w+)\s*(?:\((.+?)\))?\s*-->\s*$")


def _snippets() -> list[tuple[str, str, str | None, str]]:
    """(id, mode, reason, code) for each python block of the README."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    out = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        heading = [h for h in re.findall(r"^#+ (.+)$", text[: m.start()], re.M)][-1:]
        mark = _MARK.search(before)
        mode, reason = (mark.group(1), mark.group(2)) if mark else ("script", None)
        slug = re.sub(r"[^a-z0-9]+", "-", (heading[0] if heading else "top").lower()).strip("-")
        out.append((f"L{line}-{slug}", mode, reason, m.group(1)))
    return out


SNIPPETS = _snippets()


def _run_script(code: str, cwd: str) -> None:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for attempt in (1, 2):
        r = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, (
            f"run {attempt} failed:\n{r.stdout}\n{r.stderr}\n(a fragment that cannot run alone "
            "gets '<!-- readme-test: skip (why) -->' on the line above its fence)")


def test_readme_has_snippets_of_every_kind() -> None:
    modes = {mode for _, mode, _, _ in SNIPPETS}
    assert {"script", "pytest", "server"} <= modes
    for sid, mode, reason, _ in SNIPPETS:
        assert mode in ("script", "pytest", "server", "skip", "quix"), f"{sid}: unknown mark {mode!r}"
        assert mode != "skip" or reason, f"{sid}: a skipped snippet must say why"


def test_readme_opens_with_the_two_commands() -> None:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[0].startswith("# ") and lines[2] == "```sh"
    assert "logmq demo" in lines[3] and "python -m pytest" in lines[4] and lines[5] == "```"


_PLUGIN_MODES = ("pytest", "quix")


@pytest.mark.parametrize("mode,reason,code",
                         [s[1:] for s in SNIPPETS if s[1] not in _PLUGIN_MODES],
                         ids=[s[0] for s in SNIPPETS if s[1] not in _PLUGIN_MODES])
def test_snippet_runs_twice(mode: str, reason: str | None, code: str, tmp_path) -> None:
    if mode == "skip":
        pytest.skip(f"marked in README: {reason}")
    if mode == "server":
        from logmq.testing import LogMQServer

        with LogMQServer(tmp_path / "server-data") as srv:
            _run_script(code.replace("127.0.0.1:9092", srv.bootstrap), str(tmp_path))
        return
    _run_script(code, str(tmp_path))


def _pytest_snippets_pass_twice(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                mode: str) -> None:
    files = {f"test_readme_{sid.replace('-', '_')}": code
             for sid, m, _, code in SNIPPETS if m == mode}
    assert files
    pytester.makepyfile(**files)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for _ in (1, 2):
        result = pytester.runpytest("-p", "logmq.testing.pytest_plugin", "-q", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=len(files))


def test_pytest_snippets_pass_twice(pytester: pytest.Pytester,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _pytest_snippets_pass_twice(pytester, monkeypatch, "pytest")


@pytest.mark.quix
def test_quix_snippets_pass_twice(pytester: pytest.Pytester,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _pytest_snippets_pass_twice(pytester, monkeypatch, "quix")
