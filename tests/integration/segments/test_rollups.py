"""Rollups on PostgreSQL: a rule answered from `segments_customerrollup` matches exactly the customers
the raw-row path matches, for every window and operator the rollups serve, at several `now`s
around their `as_of`, for customers touched since (read raw), and after the incremental drain
and a full rebuild."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import Customer, CustomerConsent, Event, Order
from customers.services import ingest_orders, record_consent
from segments import drain, rollups, services
from segments.features.services import compute_features
from segments.models import (
    CustomerFeatures,
    CustomerRollup,
    RollupState,
    Segment,
    SegmentMembership,
    TouchedCustomer,
)
from segments.rules import matching_customers
from segments.rules.compiler import matching_ids
from segments.selectors import preview_rule
from tests.factories.catalog import ProductFactory
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db
AS_OF = timezone.now().replace(microsecond=0) - timedelta(days=1)
TYPES = ["view", "view", "view", "add_to_cart", "purchase", "search", "custom"]
STATUSES = ["placed", "paid", "fulfilled", "cancelled", "returned"]

RULES = [
    {"field": "order.count", "op": "gte", "value": 3},
    {"field": "order.count", "op": "lt", "value": 2},
    {"field": "order.count", "op": "eq", "value": 0},
    {"field": "order.count", "op": "in", "value": [1, 4]},
    {"field": "order.count", "op": "not_in", "value": [0, 2]},
    {"field": "order.count", "where": {"within_days": 30}, "op": "gte", "value": 1},
    {"field": "order.count", "where": {"within_days": 90}, "op": "between", "value": [1, 2]},
    {"field": "order.count", "where": {"within_days": 7}, "op": "eq", "value": 0},
    {"field": "order.revenue", "op": "gt", "value": 120},
    {"field": "order.revenue", "op": "lte", "value": 0},
    {"field": "order.revenue", "where": {"within_days": 90}, "op": "gt", "value": 60},
    {"field": "order.revenue", "where": {"within_days": 365}, "op": "neq", "value": 0},
    {"field": "order.revenue", "where": {"within_days": 14}, "op": "is_set"},
    {
        "field": "order.revenue",
        "where": {"status": ["placed", "paid", "fulfilled", "returned"]},
        "op": "gte",
        "value": 50,
    },
    {"field": "order.aov", "op": "gt", "value": 40},
    {"field": "order.aov", "op": "between", "value": [20, 45.5]},
    {"field": "order.aov", "op": "is_not_set"},
    {"field": "order.last_at", "op": "within_last_days", "value": 20},
    {"field": "order.last_at", "op": "more_than_days_ago", "value": 60},
    {"field": "order.first_at", "op": "before", "value": (AS_OF - timedelta(days=200)).isoformat()},
    {"field": "order.first_at", "op": "is_set"},
    {"field": "event.count", "op": "gte", "value": 6},
    {"field": "event.count", "where": {"type": "view"}, "op": "gte", "value": 3},
    {"field": "event.count", "where": {"type": "view", "within_days": 30}, "op": "gte", "value": 2},
    {
        "field": "event.count",
        "where": {"type": ["view", "search"], "within_days": 14},
        "op": "lt",
        "value": 2,
    },
    {"field": "event.count", "where": {"type": "add_to_cart", "within_days": 7}, "op": "gte", "value": 1},
    {"field": "event.count", "where": {"type": "custom"}, "op": "is_not_set"},
    {"field": "event.count", "where": {"type": "purchase", "within_days": 365}, "op": "eq", "value": 0},
    {"field": "event.last_at", "where": {"type": "view"}, "op": "within_last_days", "value": 10},
    {"field": "event.first_at", "where": {"type": "search"}, "op": "more_than_days_ago", "value": 100},
    {"field": "event.last_at", "where": {"type": "add_to_cart"}, "op": "is_set"},
    {
        "all": [
            {"field": "customer.country", "op": "in", "value": ["GB", "FR"]},
            {
                "any": [
                    {
                        "field": "event.count",
                        "where": {"type": "view", "within_days": 30},
                        "op": "gte",
                        "value": 3,
                    },
                    {"field": "order.revenue", "where": {"within_days": 90}, "op": "gt", "value": 100},
                ]
            },
            {"not": {"field": "order.last_at", "op": "within_last_days", "value": 5}},
        ]
    },
]
RULES += [  # whole subtrees of rollup conditions become one predicate over the rollup row
    {
        "not": {
            "any": [
                {"field": "order.last_at", "op": "within_last_days", "value": 20},
                {"field": "order.aov", "op": "gt", "value": 40},
            ]
        }
    },
    {
        "all": [
            {"field": "event.count", "where": {"type": "view", "within_days": 90}, "op": "lt", "value": 2},
            {"not": {"field": "event.last_at", "where": {"type": "search"}, "op": "is_set"}},
            {
                "any": [
                    {"field": "order.count", "op": "eq", "value": 0},
                    {"field": "order.revenue", "op": "gt", "value": 100},
                ]
            },
        ]
    },
    {
        "not": {
            "field": "order.first_at",
            "op": "between",
            "value": [(AS_OF - timedelta(days=300)).isoformat(), AS_OF.isoformat()],
        }
    },
]
SUBTREE_RULE = RULES[-2]
# The narrow facts the rollup row copies: consent per channel and the features' model outputs,
# alone, negated, and in groups with order/event conditions and with conditions it does not answer.
FACT_RULES = [
    {"field": "consent.email", "op": "eq", "value": "granted"},
    {"field": "consent.email", "op": "eq", "value": "none"},
    {"field": "consent.sms", "op": "neq", "value": "withdrawn"},
    {"field": "consent.push", "op": "in", "value": ["pending", "none"]},
    {"field": "consent.email", "op": "not_in", "value": ["granted", "pending"]},
    {"field": "consent.sms", "op": "is_set"},
    {"field": "consent.push", "op": "is_not_set"},
    {"field": "churn_probability", "op": "lt", "value": 0.5},
    {"field": "churn_probability", "op": "is_not_set"},
    {"field": "features.p_alive", "op": "between", "value": [0.2, 0.6]},
    {"field": "predicted_clv", "op": "gte", "value": 100},
    {"field": "predicted_clv", "op": "neq", "value": 50},
    {"field": "rfm.group", "op": "eq", "value": "Champions"},
    {"field": "rfm.group", "op": "not_in", "value": ["Lost", "At risk"]},
    {"field": "rfm.group", "op": "is_set"},
    {"field": "cluster", "op": "in", "value": [0, 2]},
    {"not": {"field": "cluster", "op": "eq", "value": 1}},
    {
        "all": [
            {"field": "customer.country", "op": "in", "value": ["GB", "FR"]},
            {"field": "consent.email", "op": "eq", "value": "granted"},
            {
                "any": [
                    {
                        "field": "event.count",
                        "where": {"type": "view", "within_days": 30},
                        "op": "gte",
                        "value": 3,
                    },
                    {"field": "order.revenue", "where": {"within_days": 90}, "op": "gt", "value": 100},
                ]
            },
            {"not": {"field": "loyalty.tier", "op": "eq", "value": "Gold"}},
            {"field": "churn_probability", "op": "lt", "value": 0.5},
        ]
    },
    {
        "any": [
            {"field": "customer.country", "op": "eq", "value": "DE"},
            {"not": {"field": "consent.email", "op": "eq", "value": "granted"}},
            {"field": "rfm.group", "op": "eq", "value": "Lost"},
            {"field": "order.count", "op": "eq", "value": 0},
        ]
    },
    {
        "not": {
            "all": [
                {"field": "consent.sms", "op": "in", "value": ["granted", "none"]},
                {"field": "predicted_clv", "op": "lt", "value": 80},
            ]
        }
    },
]
RULES += FACT_RULES
# Around as_of: the windows are corrected by raw slices in both directions.
OFFSETS = [timedelta(0), timedelta(hours=5), timedelta(days=2, hours=3), -timedelta(hours=7)]


def seed(n_customers: int = 60, seed_value: int = 11) -> list[Customer]:
    rng = random.Random(seed_value)
    customers = [
        CustomerFactory(external_id=f"c{i:03d}", country=rng.choice(["GB", "FR", "DE"]))
        for i in range(n_customers)
    ]
    orders, events = [], []
    for index, customer in enumerate(customers):
        for k in range(rng.choice([0, 0, 1, 2, 3, 5])):
            status = rng.choice(STATUSES)
            total = Decimal(rng.randint(-30, 150)) if status == "returned" else Decimal(rng.randint(5, 120))
            orders.append(
                Order(
                    external_id=f"o-{index}-{k}",
                    customer=customer,
                    status=status,
                    placed_at=AS_OF - timedelta(hours=rng.randint(-60, 24 * 400)),
                    total=total + Decimal(rng.choice(["0", "0.25", "0.5"])),
                )
            )
        for k in range(rng.choice([0, 1, 3, 6, 9])):
            events.append(
                Event(
                    customer=customer,
                    type=rng.choice(TYPES),
                    occurred_at=AS_OF - timedelta(hours=rng.randint(-60, 24 * 400)),
                    idempotency_key=f"e-{index}-{k}",
                )
            )
    Order.objects.bulk_create(orders)
    Event.objects.bulk_create(events)
    consents, features = [], []
    for customer in customers:
        for channel in ("email", "sms", "push"):
            status = rng.choice([None, "granted", "granted", "withdrawn", "pending"])
            if status is not None:
                consents.append(
                    CustomerConsent(customer=customer, channel=channel, status=status, changed_at=AS_OF)
                )
        if rng.random() < 0.7:
            features.append(
                CustomerFeatures(
                    customer=customer,
                    rfm_group=rng.choice(["", "Champions", "Lost", "At risk", "New"]),
                    cluster=rng.choice([None, 0, 1, 2]),
                    churn_probability=rng.choice([None, 0.1, 0.5, 0.8]),
                    p_alive=rng.choice([None, 0.2, 0.4, 0.9]),
                    predicted_clv=rng.choice([None, Decimal("50"), Decimal("100.50"), Decimal("20")]),
                )
            )
    CustomerConsent.objects.bulk_create(consents)
    CustomerFeatures.objects.bulk_create(features)
    return customers


def answers(rule, now, *, use_rollups: bool) -> set[str]:
    queryset = matching_customers(rule, now=now, use_rollups=use_rollups)
    return set(queryset.values_list("external_id", flat=True))


def assert_same(label: str) -> None:
    for offset in OFFSETS:
        now = AS_OF + offset
        for rule in RULES:
            fast = answers(rule, now, use_rollups=True)
            raw = answers(rule, now, use_rollups=False)
            assert fast == raw, (
                f"{label}, now = as_of + {offset}: {rule}: rollups {sorted(fast ^ raw)} differ"
            )


def uses_rollups(rule, now) -> bool:
    return "segments_customerrollup" in str(matching_customers(rule, now=now).query)


def test_rollups_answer_exactly_what_the_raw_rows_answer():
    customers = seed()
    result = rollups.rebuild_rollups(as_of=AS_OF)
    assert result.customers == CustomerRollup.objects.count() > 0
    assert RollupState.objects.get().as_of == AS_OF
    assert all(uses_rollups(rule, AS_OF) for rule in RULES)
    # a subtree of rollup conditions is one scan of the rollup table
    assert str(matching_customers(SUBTREE_RULE, now=AS_OF).query).count("segments_customerrollup") == 1
    assert "segments_touchedcustomer" not in str(matching_customers(SUBTREE_RULE, now=AS_OF).query)
    assert_same("after the rebuild")

    # New orders (a return among them) and events, not yet drained: read raw for those customers.
    product = ProductFactory(sku="MUG", price=Decimal("12.50"))
    buyer, returner = customers[0], customers[1]
    ingest_rows = [
        {
            "external_id": "new-1",
            "customer": buyer.external_id,
            "placed_at": (AS_OF + timedelta(hours=1)).isoformat(),
            "lines": [{"sku": "MUG", "quantity": 9, "unit_price": str(product.price)}],
        },
        {
            "external_id": "new-2",
            "customer": returner.external_id,
            "placed_at": (AS_OF - timedelta(days=3)).isoformat(),
            "lines": [{"sku": "MUG", "quantity": -4, "unit_price": str(product.price)}],
        },
    ]
    assert ingest_orders(rows=ingest_rows).created == 2
    late = Event.objects.create(
        customer=customers[2], type="view", occurred_at=AS_OF - timedelta(days=2), idempotency_key="late"
    )
    drain.record_touched(
        order_ids=list(Order.objects.filter(external_id__startswith="new-").values_list("pk", flat=True))
    )
    drain.record_touched(event_ids=[late.pk])
    assert TouchedCustomer.objects.count() == 3
    # touched customers read raw (the split); with nobody touched, the rule is compiled once
    assert "segments_touchedcustomer" in str(matching_customers(SUBTREE_RULE, now=AS_OF).query)
    assert_same("touched, not drained")
    # the preview's statement: the untouched from the rollups UNION ALL the touched from raw rows
    assert "UNION ALL" in str(matching_ids(SUBTREE_RULE, now=AS_OF).query)
    for now in (AS_OF, AS_OF + timedelta(hours=5)):
        for rule in RULES:
            preview = preview_rule(rule=rule, now=now, sample_size=100)
            assert preview == preview_rule(rule=rule, now=now, sample_size=100, use_rollups=False), rule

    # The drain refreshes their rollups, then their segments, then forgets them.
    drain.refresh_touched(now=AS_OF)
    assert not TouchedCustomer.objects.exists()
    assert (
        CustomerRollup.objects.get(customer=buyer).order_count
        == Order.objects.filter(customer=buyer).exclude(status="cancelled").count()
    )
    assert_same("after the drain")

    # A rebuild at another time gives the same answers again.
    rollups.rebuild_rollups(as_of=AS_OF + timedelta(hours=9))
    assert_same("after a later rebuild")


def test_far_from_as_of_or_scoped_reads_raw_rows():
    seed(10)
    rollups.rebuild_rollups(as_of=AS_OF)
    rule = {"field": "order.count", "op": "gte", "value": 1}
    assert uses_rollups(rule, AS_OF)
    assert not uses_rollups(rule, AS_OF + rollups.MAX_LAG + timedelta(hours=1))
    ids = list(Customer.objects.values_list("pk", flat=True)[:3])
    assert "segments_customerrollup" not in str(matching_customers(rule, now=AS_OF, scope=ids).query)
    # sku / category / since qualifiers are not in the rollups
    assert not uses_rollups({"field": "order.count", "where": {"sku": "X"}, "op": "gte", "value": 1}, AS_OF)
    assert not uses_rollups(
        {"field": "event.count", "where": {"type": "view", "within_days": 29}, "op": "gte", "value": 1}, AS_OF
    )


def test_full_refresh_and_preview_read_the_rollups():
    seed(30)
    segment = Segment.objects.create(
        name="Buyers", kind=Segment.Kind.DYNAMIC, rules={"field": "order.revenue", "op": "gt", "value": 50}
    )
    raw = answers(segment.rules, timezone.now(), use_rollups=False)
    results = services.refresh_all_segments()  # rebuilds the rollups first
    assert [r.segment_id for r in results] == [segment.pk]
    assert RollupState.objects.exists()
    members = set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "customer__external_id", flat=True
        )
    )
    assert members == raw
    built = RollupState.objects.get().as_of
    services.refresh_all_segments()  # rollups an instant old: not rebuilt
    assert RollupState.objects.get().as_of == built
    RollupState.objects.update(as_of=built - timedelta(hours=rollups.REBUILD_HOURS))
    services.refresh_all_segments()  # 6 hours old: rebuilt
    assert RollupState.objects.get().as_of > built
    with CaptureQueriesContext(connection) as queries:
        preview = preview_rule(rule=segment.rules)
    assert preview["count"] == len(raw)
    assert any("segments_customerrollup" in q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_swapping_its_table_sends_readers_to_the_raw_rows(settings):
    """While a rebuild holds the swap lock, a transaction compiles against raw rows (no wait), and a
    transaction that compiled against the rollups keeps a rebuild from swapping until it ends."""
    import psycopg2
    from django.db import transaction

    seed(5)
    rollups.rebuild_rollups(as_of=AS_OF)  # committed: the swap lock is free again
    rule = {"field": "order.count", "op": "gte", "value": 1}
    db = settings.DATABASES["default"]
    other = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432
    )
    other.autocommit = True
    try:
        with other.cursor() as cursor:  # a rebuild at its swap
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", list(rollups.SWAP_LOCK))
        with transaction.atomic():
            assert not uses_rollups(rule, AS_OF)
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", list(rollups.SWAP_LOCK))
        with transaction.atomic():
            assert uses_rollups(rule, AS_OF)  # and this transaction holds the lock shared
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", list(rollups.SWAP_LOCK))
                assert cursor.fetchone()[0] is False  # a rebuild could not swap now
    finally:
        other.close()


def test_consent_changes_and_features_runs_keep_the_rollup_facts_exact(django_capture_on_commit_callbacks):
    customers = seed(40, seed_value=5)
    rollups.rebuild_rollups(as_of=AS_OF)
    assert CustomerRollup.objects.count() == len(customers)  # a row per customer, orders or not
    grouped = FACT_RULES[-3]  # consent, churn and the order/event subtree in one rollup scan
    for now in (
        AS_OF,
        AS_OF + timedelta(hours=5),
        AS_OF - timedelta(hours=7),
    ):  # windows moved: slices joined
        assert str(matching_customers(grouped, now=now).query).count("segments_customerrollup") == 1
    assert all(uses_rollups(rule, AS_OF) for rule in FACT_RULES)

    # A consent change, committed and announced but not yet drained: that customer reads raw.
    target = next(c for c in customers if CustomerRollup.objects.get(customer=c).consent_email != "withdrawn")
    record_consent(customer=target, channel="email", action="withdrawn", source="test")
    drain.touch_customers(customer_ids=[target.pk])  # what the announcement does first
    assert CustomerRollup.objects.get(customer=target).consent_email != "withdrawn"
    assert_same("consent changed, touched, not drained")

    # Announced after commit (no dynamic segment exists: the rollups alone want the touch), then
    # drained: the rollup row has the new state and the customer is no longer read raw.
    other = next(
        c for c in customers if c != target and CustomerRollup.objects.get(customer=c).consent_sms is None
    )
    with django_capture_on_commit_callbacks(execute=True):
        record_consent(customer=other, channel="sms", action="granted", source="test")
    assert not TouchedCustomer.objects.filter(customer_id=other.pk).exists()
    assert CustomerRollup.objects.get(customer=other).consent_sms == "granted"
    drain.refresh_touched(now=AS_OF)
    assert CustomerRollup.objects.get(customer=target).consent_email == "withdrawn"
    assert_same("consent changes drained")

    # A features run rewrites the features table: the rollup rows follow in the same transaction,
    # and a customer created since the rebuild (no rollup row yet) gets a whole row.
    newcomer = CustomerFactory(external_id="newcomer", country="GB")
    Order.objects.create(
        external_id="o-newcomer",
        customer=newcomer,
        status="paid",
        placed_at=AS_OF - timedelta(days=2),
        total=90,
    )
    assert not CustomerRollup.objects.filter(customer=newcomer).exists()
    CustomerFeatures.objects.all().delete()
    compute_features(as_of=AS_OF)
    written = dict(CustomerFeatures.objects.values_list("customer_id", "rfm_group"))
    assert written
    assert dict(
        CustomerRollup.objects.filter(customer_id__in=written).values_list("customer_id", "rfm_group")
    ) == (written)
    assert not CustomerRollup.objects.exclude(customer_id__in=written).exclude(rfm_group=None).exists()
    assert CustomerRollup.objects.get(customer=newcomer).order_count == 1
    assert_same("after a features run")
