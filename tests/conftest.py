from __future__ import annotations

import os
import sys

import pytest

import logmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "data")


@pytest.fixture
def log(data_dir):
    lg = logmq.open(data_dir)
    yield lg
    lg.close()


@pytest.fixture
def python_exe() -> str:
    return sys.executable
