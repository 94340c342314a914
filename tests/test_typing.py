"""Type checkers see precise types on logmq's public API: mypy on tests/typing/usage.py."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

USAGE = os.path.join(ROOT, "tests", "typing", "usage.py")


def _mypy(path: str, tmp: str) -> subprocess.CompletedProcess[str]:
    # --follow-imports=silent: the check is about what users see, not logmq's internals
    # (those are checked by the project's own mypy run)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--follow-imports=silent",
         "--ignore-missing-imports", "--cache-dir", os.path.join(tmp, "cache"),
         "--config-file", os.devnull, "--warn-unused-ignores", "--strict-equality", path],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, MYPYPATH=ROOT))  # this checkout's logmq, not an installed one


def test_public_api_types(tmp_path) -> None:
    r = _mypy(USAGE, str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr


def test_assert_type_catches_drift(tmp_path) -> None:
    """The check itself: a wrong expectation in the usage file fails it."""
    bad = tmp_path / "bad.py"
    bad.write_text("from typing import assert_type\nimport logmq\n\n"
                   "def f(log: logmq.Broker) -> None:\n"
                   "    assert_type(log.producer(), logmq.Consumer)\n")
    r = _mypy(str(bad), str(tmp_path))
    assert r.returncode == 1 and "assert_type" in r.stdout, r.stdout + r.stderr


def test_py_typed_ships() -> None:
    import tomllib

    assert os.path.exists(os.path.join(ROOT, "logmq", "py.typed"))
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        cfg = tomllib.load(f)
    assert "py.typed" in cfg["tool"]["setuptools"]["package-data"]["logmq"]
