"""RFM and order features computed in SQL on PostgreSQL, checked against hand counts and the pure scorer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection

from customers.models import Customer, Order
from segments.analytics import DEFAULT_RFM_MAPPING, RFMMapping, quintile_scores
from segments.features import services
from segments.features.models import AnalyticsRun
from segments.features.recency import recency_days, recency_expression
from segments.models import CustomerFeatures
from tests.factories.catalog import ProductFactory
from tests.factories.customers import CustomerFactory, make_order

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 30, 18, 0, tzinfo=UTC)


def test_features_of_hand_built_orders_with_returns_refunds_and_cancellations():
    cheap, dear = ProductFactory(price=Decimal("10.00")), ProductFactory(price=Decimal("25.00"))
    alice, bob, carol, dave = (CustomerFactory() for _ in range(4))
    # Alice: three purchases, one with a returned item inside it, and a separate refund order.
    make_order(customer=alice, lines=[(dear, 2), (cheap, 1)], placed_at=NOW - timedelta(days=40))  # 60
    make_order(customer=alice, lines=[(cheap, 3), (cheap, -1)], placed_at=NOW - timedelta(days=10))  # 20
    make_order(customer=alice, lines=[(dear, 1)], placed_at=NOW - timedelta(days=3, hours=20))  # 25
    make_order(customer=alice, lines=[(dear, -1)], placed_at=NOW - timedelta(days=2))  # refund -25
    # Bob: one purchase, a cancelled and a wholly returned order, and one after the as-of date.
    make_order(customer=bob, lines=[(cheap, 4)], placed_at=NOW - timedelta(days=100))  # 40
    make_order(customer=bob, lines=[(dear, 4)], placed_at=NOW - timedelta(days=50), status="cancelled")
    make_order(customer=bob, lines=[(dear, 2)], placed_at=NOW - timedelta(days=30), status="returned")
    make_order(customer=bob, lines=[(dear, 1)], placed_at=NOW + timedelta(days=1))
    # Carol: only a refund (bought before the shop used Reachly). Dave: nothing.
    make_order(customer=carol, lines=[(cheap, -2)], placed_at=NOW - timedelta(days=5))

    run = services.compute_features(as_of=NOW)

    assert run.state == AnalyticsRun.State.SUCCEEDED and run.customers == 4
    a = CustomerFeatures.objects.get(customer=alice)
    assert (a.frequency, a.monetary, a.average_order_value) == (3, Decimal("80.00"), Decimal("26.67"))
    # Last purchase on the 26th, as of the 30th (the refund is not a visit).
    assert recency_days(a.last_order_at, NOW) == 4
    assert a.first_order_at == NOW - timedelta(days=40)
    assert a.last_order_at == NOW - timedelta(days=3, hours=20)
    b = CustomerFeatures.objects.get(customer=bob)
    assert (b.frequency, b.monetary, recency_days(b.last_order_at, NOW)) == (1, Decimal("40.00"), 100)
    c = CustomerFeatures.objects.get(customer=carol)
    assert (c.frequency, c.monetary, recency_days(c.last_order_at, NOW), c.rfm_r, c.rfm_group) == (
        0,
        Decimal("-20.00"),
        None,
        None,
        "",
    )
    d = CustomerFeatures.objects.get(customer=dave)
    assert (d.frequency, d.monetary, d.average_order_value, d.last_order_at) == (
        0,
        Decimal("0.00"),
        None,
        None,
    )
    # Two scored customers: Alice is more recent, more frequent and spends more.
    assert (a.rfm_r, a.rfm_f, a.rfm_m) == (2, 2, 2) and (b.rfm_r, b.rfm_f, b.rfm_m) == (1, 1, 1)
    assert a.rfm_group == DEFAULT_RFM_MAPPING.group_of(2, 2, 2)
    assert a.computed_at is not None


def _random_shop(rng: np.random.Generator, customers: int) -> list[Customer]:
    created = Customer.objects.bulk_create([Customer(external_id=f"c{i:05d}") for i in range(customers)])
    orders = []
    for customer in created:
        # Few distinct counts and days: plenty of ties, which is where NTILE and a naive
        # quintile differ.
        for n in range(int(rng.integers(0, 5))):
            orders.append(
                Order(
                    external_id=f"o{customer.pk}-{n}",
                    customer=customer,
                    placed_at=NOW - timedelta(days=int(rng.integers(0, 60)), hours=int(rng.integers(0, 12))),
                    total=Decimal(int(rng.choice([5, 10, 20, 50]))),
                )
            )
    Order.objects.bulk_create(orders)
    return created


def test_sql_rfm_equals_the_pure_quintile_scorer_and_the_rule_table():
    rng = np.random.default_rng(7)
    _random_shop(rng, 400)
    services.compute_features(as_of=NOW)
    rows = np.array(
        CustomerFeatures.objects.filter(frequency__gt=0)
        .annotate(recency_days=recency_expression(as_of=NOW))
        .order_by("customer_id")
        .values_list("customer_id", "recency_days", "frequency", "monetary", "rfm_r", "rfm_f", "rfm_m"),
        dtype=np.float64,
    )
    ids = rows[:, 0].astype(np.int64)
    assert len(ids) > 300
    np.testing.assert_array_equal(rows[:, 4], quintile_scores(rows[:, 1], tiebreak=ids, descending=True))
    np.testing.assert_array_equal(rows[:, 5], quintile_scores(rows[:, 2], tiebreak=ids))
    np.testing.assert_array_equal(rows[:, 6], quintile_scores(rows[:, 3], tiebreak=ids))
    groups = list(
        CustomerFeatures.objects.filter(frequency__gt=0)
        .order_by("customer_id")
        .values_list("rfm_group", flat=True)
    )
    expected = DEFAULT_RFM_MAPPING.assign(
        rows[:, 4].astype(int), rows[:, 5].astype(int), rows[:, 6].astype(int)
    )
    assert groups == list(expected)
    # The benchmark's hand-written query counts the same cells.
    sql, params = services.hand_written_rfm_sql(as_of=NOW)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        baseline = {(r, f, m): n for r, f, m, n, _ in cursor.fetchall()}
    cells: dict[tuple[int, int, int], int] = {}
    for r, f, m in rows[:, 4:7].astype(int):
        cells[(r, f, m)] = cells.get((r, f, m), 0) + 1
    assert baseline == cells


def test_recompute_is_idempotent_and_follows_new_orders():
    rng = np.random.default_rng(3)
    customers = _random_shop(rng, 60)
    services.compute_features(as_of=NOW)
    first = list(
        CustomerFeatures.objects.order_by("customer_id").values_list("customer_id", "rfm_group", "monetary")
    )
    again = services.compute_features(as_of=NOW)
    # Nothing changed, nothing rewritten (a changed row is a new row version in PostgreSQL).
    assert (
        again.summary["phase_seconds"]["rows_changed"] == 0 == again.summary["phase_seconds"]["rows_inserted"]
    )
    assert (
        list(
            CustomerFeatures.objects.order_by("customer_id").values_list(
                "customer_id", "rfm_group", "monetary"
            )
        )
        == first
    )
    assert CustomerFeatures.objects.count() == 60
    Order.objects.create(external_id="late", customer=customers[0], placed_at=NOW, total=Decimal("1000"))
    services.compute_features(as_of=NOW)
    latest = CustomerFeatures.objects.get(customer=customers[0])
    assert recency_days(latest.last_order_at, NOW) == 0 and latest.rfm_r == 5 and latest.rfm_m == 5


def test_mapping_from_settings(settings):
    rng = np.random.default_rng(5)
    _random_shop(rng, 50)
    settings.SEGMENTS_RFM_MAPPING = {
        "value_score": "frequency",
        "rules": [
            {"group": "VIP", "recency": [4, 5], "value": [4, 5]},
            {"group": "Everyone else", "recency": [1, 5], "value": [1, 5]},
        ],
    }
    services.compute_features(as_of=NOW)
    mapping = RFMMapping.from_table(settings.SEGMENTS_RFM_MAPPING["rules"], value_score="frequency")
    for r, f, m, group in CustomerFeatures.objects.filter(frequency__gt=0).values_list(
        "rfm_r", "rfm_f", "rfm_m", "rfm_group"
    ):
        assert group == mapping.group_of(r, f, m)
    assert set(CustomerFeatures.objects.filter(frequency__gt=0).values_list("rfm_group", flat=True)) == {
        "VIP",
        "Everyone else",
    }


def test_a_failed_run_keeps_the_previous_values(settings):
    rng = np.random.default_rng(11)
    _random_shop(rng, 40)
    services.compute_features(as_of=NOW)
    before = list(CustomerFeatures.objects.order_by("customer_id").values_list("rfm_group", "computed_at"))
    settings.SEGMENTS_RFM_MAPPING = {"rules": [{"group": "Half", "recency": [1, 2], "value": [1, 5]}]}
    with pytest.raises(ValueError, match="score combinations have no group"):
        services.compute_features(as_of=NOW)
    failed = AnalyticsRun.objects.filter(kind="features").first()
    assert failed.state == AnalyticsRun.State.FAILED and "no group" in failed.error
    assert (
        list(CustomerFeatures.objects.order_by("customer_id").values_list("rfm_group", "computed_at"))
        == before
    )


def test_clusters_are_written_with_profiles():
    rng = np.random.default_rng(2)
    _random_shop(rng, 300)
    services.compute_features(as_of=NOW)
    run = services.compute_clusters(k_range=(2, 4))
    assert run.state == AnalyticsRun.State.SUCCEEDED, run.error
    k = run.summary["k"]
    assert 2 <= k <= 4 and len(run.summary["profiles"]) == k
    labelled = CustomerFeatures.objects.filter(cluster__isnull=False)
    assert labelled.count() == CustomerFeatures.objects.filter(frequency__gt=0).count() == run.customers
    assert not CustomerFeatures.objects.filter(frequency=0, cluster__isnull=False).exists()
    sizes = {p["cluster"]: p["customers"] for p in run.summary["profiles"]}
    for cluster, size in sizes.items():
        assert labelled.filter(cluster=cluster).count() == size
    assert all(p["description"] for p in run.summary["profiles"])
    # Same data, same seed: same clusters.
    again = services.compute_clusters(k_range=(2, 4))
    assert again.summary["profiles"] == run.summary["profiles"]


def test_nothing_to_cluster_or_fit_is_a_failed_run_with_a_reason():
    CustomerFactory()
    services.compute_features(as_of=NOW)
    clusters = services.compute_clusters()
    clv = services.compute_clv(as_of=NOW)
    assert clusters.state == clv.state == AnalyticsRun.State.FAILED
    assert "no customer has a purchase" in clusters.error and "no customer has a purchase" in clv.error
