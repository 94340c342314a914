import pytest


@pytest.fixture
def log(tmp_path):
    import logmq

    lg = logmq.open(str(tmp_path / "data"), cleaner=False)
    yield lg
    lg.close()
