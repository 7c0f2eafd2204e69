"""Shared set-up for the pure experiment-statistics tests: one BLAS thread, nothing else."""

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    # The machine is shared; the simulations here are vectorised and gain nothing from threads.
    with threadpool_limits(limits=1):
        yield
