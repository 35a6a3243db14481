import os
from pathlib import Path

import pytest


def shared_data_dir():
    """Folder of the real shared datasets: $MINISNN_SHARED_DATA, else <repo>/../shared/data."""
    env = os.environ.get("MINISNN_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """Path of the real MNIST/Fashion-MNIST copies; skips the test when they are absent."""
    path = shared_data_dir()
    if not (path / "mnist").is_dir():
        pytest.skip(f"real datasets not found at {path} (set MINISNN_SHARED_DATA to the folder "
                    "holding mnist/ and fashion-mnist/)")
    return path
