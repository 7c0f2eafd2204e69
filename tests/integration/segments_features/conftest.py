"""Fixtures of the customer-analytics tests: orders built by hand and the CDNOW sample as orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[3]
CDNOW = ROOT / "data" / "cdnow"
#: End of the CDNOW calibration period (39 weeks from 1997-01-01), inclusive.
CDNOW_CALIBRATION_END = datetime(1997, 9, 30, 23, 59, 59, tzinfo=UTC)


@pytest.fixture(autouse=True)
def one_thread():
    """The machine is shared; k-means and BLAS must not grab every core."""
    with threadpool_limits(limits=1):
        yield


def cdnow_transactions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raw = np.loadtxt(CDNOW / "transactions_sample.txt", dtype=str)
    ids = raw[:, 1].astype(np.int64)
    dates = np.array([f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in raw[:, 2]], dtype="datetime64[D]")
    return ids, dates, raw[:, 4].astype(np.float64)


def load_cdnow_orders() -> dict[int, int]:
    """The 6,919 CDNOW transactions as orders of 2,357 customers (placed at noon UTC); returns
    sample id -> customer pk."""
    from customers.models import Customer, Order

    ids, dates, amounts = cdnow_transactions()
    customers = Customer.objects.bulk_create(
        [Customer(external_id=f"cdnow-{i:04d}") for i in sorted(set(ids.tolist()))], batch_size=2000
    )
    by_sample = {int(c.external_id.split("-")[1]): c.pk for c in customers}
    orders = [
        Order(
            external_id=f"cdnow-order-{n}",
            customer_id=by_sample[int(i)],
            placed_at=datetime.fromisoformat(str(d)).replace(hour=12, tzinfo=UTC),
            total=Decimal(f"{a:.2f}"),
            status=Order.Status.PLACED,
        )
        for n, (i, d, a) in enumerate(zip(ids, dates, amounts, strict=True))
    ]
    Order.objects.bulk_create(orders, batch_size=5000)
    return by_sample


@pytest.fixture
def cdnow_orders(db):
    return load_cdnow_orders()


def days_ago(now: datetime, days: float) -> datetime:
    return now - timedelta(days=days)
