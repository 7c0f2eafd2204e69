"""The generator is pure numpy: these tests run without Django (`-p no:django`)."""

import os

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _clear_cache():
    """Replaces the suite-wide fixture that clears Django's cache: nothing here has one."""
    yield
