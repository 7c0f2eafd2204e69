"""Fixtures for the pure customer-analytics tests: the CDNOW sample with published answers."""

from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

CDNOW = Path(__file__).resolve().parents[3] / "data" / "cdnow"
CALIBRATION_END = np.datetime64("1997-09-30")


@pytest.fixture(autouse=True)
def one_thread():
    """The machine is shared; k-means and BLAS must not grab every core."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def cdnow_transactions():
    """(customer id, date, dollar value) of the 6,919 CDNOW sample transactions, 1997-01 to 1998-06."""
    raw = np.loadtxt(CDNOW / "transactions_sample.txt", dtype=str)
    ids = raw[:, 1].astype(np.int64)
    dates = np.array([f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in raw[:, 2]], dtype="datetime64[D]")
    return ids, dates, raw[:, 4].astype(np.float64)


@pytest.fixture(scope="session")
def cdnow_summary():
    """Published calibration summary: columns ID, x, t_x, T, zbar (39 weeks, in weeks)."""
    with_spend = np.loadtxt(CDNOW / "customers_summary_with_spend.csv", delimiter=",", skiprows=1)
    plain = np.loadtxt(CDNOW / "customers_summary.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(plain, with_spend[:, :4])
    return with_spend
