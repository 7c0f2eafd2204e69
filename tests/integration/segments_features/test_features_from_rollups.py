"""The features run reading the purchase aggregates from the per-customer rollups (PostgreSQL) writes
exactly what reading every order writes: for touched customers not yet drained, customers created
since the rebuild, refunds, returns and cancellations; it falls back to the orders when an order
is dated after the run's as_of. Recency is derived from the last purchase, not stored, so a night
without new purchases rewrites nothing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from customers.models import Customer, Order
from customers.services import ingest_orders
from segments import drain, rollups
from segments.features import services
from segments.features.recency import recency_days, recency_expression
from segments.features.selectors import customer_features
from segments.features.sql import FEATURE_COLUMNS
from segments.models import CustomerFeatures, CustomerRollup, TouchedCustomer
from segments.rules import matching_customers
from tests.factories.catalog import ProductFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 30, 18, 0, tzinfo=UTC)
STATUSES = ["placed", "paid", "fulfilled", "paid", "cancelled", "returned"]
COLUMNS = tuple(c for c in FEATURE_COLUMNS if c != "computed_at")  # computed_at: when written


def _shop(n: int, seed: int) -> list[Customer]:
    rng = random.Random(seed)
    customers = Customer.objects.bulk_create([Customer(external_id=f"c{i:04d}") for i in range(n)])
    orders = []
    for customer in customers:
        for k in range(rng.choice([0, 0, 1, 2, 3, 6])):
            status = rng.choice(STATUSES)
            # refunds (negative totals), free orders, cents: every branch of purchase and spend
            total = Decimal(rng.choice([-40, -5, 0, 10, 25, 60, 120])) + Decimal(rng.choice(["0", "0.35"]))
            orders.append(
                Order(
                    external_id=f"o-{customer.pk}-{k}",
                    customer=customer,
                    status=status,
                    placed_at=NOW - timedelta(days=rng.randint(0, 300), hours=rng.randint(0, 23)),
                    total=total,
                )
            )
    Order.objects.bulk_create(orders)
    return customers


def _features() -> list[tuple]:
    return list(CustomerFeatures.objects.order_by("customer_id").values_list(*COLUMNS))


def _both_ways(as_of: datetime) -> tuple[list[tuple], list[tuple], str]:
    """The features written from the rollups, then from the orders (each run from scratch)."""
    CustomerFeatures.objects.all().delete()
    fast = services.compute_features(as_of=as_of)
    from_rollups = _features()
    CustomerFeatures.objects.all().delete()
    services.compute_features(as_of=as_of, use_rollups=False)
    return from_rollups, _features(), fast.summary["source"]


def test_rollup_source_writes_what_the_orders_write():
    customers = _shop(150, seed=4)
    rollups.rebuild_rollups(as_of=NOW - timedelta(hours=3))
    fast, raw, source = _both_ways(NOW)
    assert source == "rollups" and fast == raw and len(fast) == 150

    # Orders arrive through the ingest (touched, not yet drained): a new purchase, a refund, a
    # status change of an existing order to returned; and a customer created since the rebuild.
    ProductFactory(sku="MUG", price=Decimal("12.50"))
    newcomer = Customer.objects.create(external_id="newcomer")
    bought = next(c for c in customers if not Order.objects.filter(customer=c).exists())
    refunded = customers[3]
    rows = [
        {
            "external_id": "night-1",
            "customer": bought.external_id,
            "placed_at": (NOW - timedelta(hours=2)).isoformat(),
            "lines": [{"sku": "MUG", "quantity": 3, "unit_price": "12.50"}],
        },
        {
            "external_id": "night-2",
            "customer": refunded.external_id,
            "placed_at": (NOW - timedelta(hours=1)).isoformat(),
            "lines": [{"sku": "MUG", "quantity": -2, "unit_price": "12.50"}],
        },
        {
            "external_id": "night-3",
            "customer": newcomer.external_id,
            "placed_at": (NOW - timedelta(hours=1)).isoformat(),
            "lines": [{"sku": "MUG", "quantity": 1, "unit_price": "12.50"}],
        },
    ]
    assert ingest_orders(rows=rows).created == 3
    drain.record_touched(
        order_ids=list(Order.objects.filter(external_id__startswith="night-").values_list("pk", flat=True))
    )
    assert TouchedCustomer.objects.count() == 3
    assert not CustomerRollup.objects.filter(customer=newcomer).exists()
    fast, raw, source = _both_ways(NOW)
    assert source == "rollups" and fast == raw
    assert {row[0]: row[1] for row in fast}[newcomer.pk] == 1

    # After the drain the rollups carry them: still the same.
    drain.refresh_touched(now=NOW)
    assert not TouchedCustomer.objects.exists()
    fast, raw, source = _both_ways(NOW)
    assert source == "rollups" and fast == raw


def test_an_order_after_as_of_sends_the_run_to_the_orders():
    customers = _shop(30, seed=8)
    Order.objects.create(
        external_id="ahead", customer=customers[0], status="paid", placed_at=NOW + timedelta(days=2), total=80
    )
    rollups.rebuild_rollups(as_of=NOW)
    run = services.compute_features(as_of=NOW)
    assert run.summary["source"] == "orders"
    later = services.compute_features(as_of=NOW + timedelta(days=3))
    assert later.summary["source"] == "rollups"


def test_a_quiet_night_rewrites_nothing_and_recency_is_counted_to_the_run():
    customers = _shop(80, seed=9)
    rollups.rebuild_rollups(as_of=NOW)
    services.compute_features(as_of=NOW)
    first = _features()
    # The next night, nothing bought: recency moves for everyone, the rows do not.
    again = services.compute_features(as_of=NOW + timedelta(days=1))
    phases = again.summary["phase_seconds"]
    assert phases["rows_changed"] == 0 == phases["rows_inserted"]
    assert _features() == first
    # Recency is counted to the latest run, in the API's view and in the rules alike.
    buyer = CustomerFeatures.objects.filter(frequency__gt=0).order_by("customer_id").first()
    expected = recency_days(buyer.last_order_at, NOW + timedelta(days=1))
    assert expected == recency_days(buyer.last_order_at, NOW) + 1
    assert customer_features(customer=buyer.customer)["recency_days"] == expected
    annotated = dict(
        CustomerFeatures.objects.annotate(days=recency_expression()).values_list("customer_id", "days")
    )
    for row in CustomerFeatures.objects.all():
        assert annotated[row.customer_id] == recency_days(row.last_order_at, NOW + timedelta(days=1))
    matched = set(
        matching_customers({"field": "features.recency_days", "op": "lte", "value": expected}).values_list(
            "pk", flat=True
        )
    )
    assert buyer.customer_id in matched
    assert matched == {pk for pk, days in annotated.items() if days is not None and days <= expected} and len(
        matched
    ) < len(customers)
    # The rollups' copy of the group is exact after runs that wrote nothing or a few rows.
    assert dict(CustomerRollup.objects.values_list("customer_id", "rfm_group")) == dict(
        CustomerFeatures.objects.values_list("customer_id", "rfm_group")
    )
