"""The rule compiler on PostgreSQL: each field family matches exactly the customers it should."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import ConsentStatus, Customer
from loyalty.models import PointsLot, PointsTransaction
from segments.models import CustomerFeatures, Segment, SegmentMembership
from segments.rules import RuleValidationError, compile_rule, matching_customers
from tests.factories.catalog import ProductFactory
from tests.factories.customers import CustomerConsentFactory, CustomerFactory, EventFactory, make_order
from tests.factories.loyalty import LoyaltyProgramFactory, MembershipFactory, TierFactory

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def ids(rule, **kwargs) -> set[str]:
    return set(matching_customers(rule, now=NOW, **kwargs).values_list("external_id", flat=True))


@pytest.fixture
def people():
    return {
        name: CustomerFactory(external_id=name, **extra)
        for name, extra in {
            "ann": {
                "country": "GB",
                "attributes": {"vip": True, "score": 7, "birthday": "1990-05-01", "tier": "a"},
            },
            "bob": {"country": "FR", "attributes": {"vip": False, "score": "7", "plan": {"name": "pro"}}},
            "cat": {"country": "GB", "email": "", "attributes": {}},
        }.items()
    }


def test_customer_fields(people):
    assert ids({"field": "customer.country", "op": "eq", "value": "GB"}) == {"ann", "cat"}
    assert ids({"field": "customer.country", "op": "neq", "value": "GB"}) == {"bob"}
    assert ids({"field": "customer.country", "op": "in", "value": ["FR", "DE"]}) == {"bob"}
    assert ids({"field": "customer.email", "op": "is_not_set"}) == {"cat"}
    assert ids({"field": "customer.email", "op": "ends_with", "value": "@EXAMPLE.com"}) == {"ann", "bob"}
    assert ids({"field": "customer.created_at", "op": "within_last_days", "value": 1}) == {
        "ann",
        "bob",
        "cat",
    }
    assert ids({"field": "customer.created_at", "op": "before", "value": "2000-01-01"}) == set()


def test_deleted_customers_never_match(people):
    Customer.all_objects.filter(external_id="cat").update(deleted_at=NOW)
    assert ids({"all": []}) == {"ann", "bob"}


def test_attributes_are_typed(people):
    assert ids({"field": "attributes.vip", "op": "eq", "value": True}) == {"ann"}
    assert ids({"field": "attributes.vip", "op": "neq", "value": True}) == {"bob", "cat"}
    # A number compares as a number; "7" (text) is not 7.
    assert ids({"field": "attributes.score", "op": "gte", "value": 5}) == {"ann"}
    assert ids({"field": "attributes.score", "op": "eq", "value": "7"}) == {"bob"}
    assert ids({"field": "attributes.score", "op": "between", "value": [7, 8]}) == {"ann"}
    assert ids({"field": "attributes.plan.name", "op": "eq", "value": "pro"}) == {"bob"}
    assert ids({"field": "attributes.plan", "op": "is_set"}) == {"bob"}
    assert ids({"field": "attributes.birthday", "type": "date", "op": "before", "value": "1991-01-01"}) == {
        "ann"
    }
    assert (
        ids({"field": "attributes.birthday", "type": "date", "op": "after", "value": "1990-05-01"}) == set()
    )
    assert ids({"field": "attributes.tier", "op": "contains", "value": "A"}) == {"ann"}
    assert ids({"field": "attributes.tier", "op": "in", "value": ["a", "b"]}) == {"ann"}


def test_key_names_that_look_like_lookups(people):
    Customer.objects.filter(external_id="cat").update(attributes={"contains": "x", "gt": 3})
    assert ids({"field": "attributes.contains", "op": "eq", "value": "x"}) == {"cat"}
    assert ids({"field": "attributes.gt", "op": "gt", "value": 2}) == {"cat"}


def test_consent_per_channel(people):
    CustomerConsentFactory(customer=people["ann"], channel="email", status=ConsentStatus.GRANTED)
    CustomerConsentFactory(customer=people["bob"], channel="email", status=ConsentStatus.WITHDRAWN)
    CustomerConsentFactory(customer=people["bob"], channel="sms", status=ConsentStatus.GRANTED)
    assert ids({"field": "consent.email", "op": "eq", "value": "granted"}) == {"ann"}
    assert ids({"field": "consent.email", "op": "eq", "value": "none"}) == {"cat"}
    assert ids({"field": "consent.email", "op": "neq", "value": "granted"}) == {"bob", "cat"}
    assert ids({"field": "consent.sms", "op": "in", "value": ["granted", "pending"]}) == {"bob"}
    assert ids({"field": "consent.push", "op": "is_set"}) == set()


def test_events(people):
    mug = ProductFactory(sku="MUG", category_path="Home > Kitchen > Mugs")
    lamp = ProductFactory(sku="LAMP", category_path="Home > Lighting")
    for days in (1, 2, 3):
        EventFactory(customer=people["ann"], type="view", product=mug, occurred_at=NOW - timedelta(days=days))
    EventFactory(customer=people["bob"], type="view", product=lamp, occurred_at=NOW - timedelta(days=40))
    EventFactory(customer=people["bob"], type="add_to_cart", product=mug, occurred_at=NOW - timedelta(days=5))
    recent_views = {"type": "view", "within_days": 30}
    assert ids({"field": "event.count", "where": recent_views, "op": "gte", "value": 3}) == {"ann"}
    assert ids({"field": "event.count", "where": recent_views, "op": "eq", "value": 0}) == {"bob", "cat"}
    assert ids({"field": "event.count", "where": recent_views, "op": "lt", "value": 2}) == {"bob", "cat"}
    assert ids(
        {"field": "event.count", "where": {"category": "Home > Kitchen"}, "op": "gte", "value": 1}
    ) == {
        "ann",
        "bob",
    }
    assert (
        ids({"field": "event.count", "where": {"category": "Home > Kit"}, "op": "gte", "value": 1}) == set()
    )
    assert ids({"field": "event.count", "where": {"sku": "LAMP"}, "op": "gt", "value": 0}) == {"bob"}
    assert ids({"field": "event.last_at", "op": "within_last_days", "value": 2}) == {"ann"}
    assert ids({"field": "event.first_at", "op": "more_than_days_ago", "value": 30}) == {"bob"}
    assert ids({"field": "event.last_at", "op": "is_not_set"}) == {"cat"}
    assert ids(
        {"field": "event.first_at", "where": {"type": "add_to_cart"}, "op": "after", "value": "2000-01-01"}
    ) == {"bob"}


def test_orders(people):
    mug = ProductFactory(sku="MUG", category_path="Home > Kitchen", price=Decimal("10"))
    book = ProductFactory(sku="BOOK", category_path="Books", price=Decimal("50"))
    make_order(customer=people["ann"], lines=[(mug, 1)], placed_at=NOW - timedelta(days=3))
    make_order(customer=people["ann"], lines=[(book, 2)], placed_at=NOW - timedelta(days=100))
    cancelled = make_order(customer=people["bob"], lines=[(book, 10)], placed_at=NOW - timedelta(days=1))
    cancelled.status = "cancelled"
    cancelled.save()
    assert ids({"field": "order.count", "op": "gte", "value": 2}) == {"ann"}
    assert ids({"field": "order.count", "op": "eq", "value": 0}) == {"bob", "cat"}
    assert ids({"field": "order.count", "where": {"status": ["cancelled"]}, "op": "eq", "value": 1}) == {
        "bob"
    }
    assert ids({"field": "order.revenue", "op": "gt", "value": 100}) == {"ann"}
    assert ids({"field": "order.revenue", "op": "lt", "value": 50}) == {"bob", "cat"}
    assert ids(
        {"field": "order.revenue", "where": {"within_days": 30}, "op": "between", "value": [5, 20]}
    ) == {"ann"}
    assert ids({"field": "order.aov", "op": "gte", "value": 55}) == {"ann"}
    assert ids({"field": "order.last_at", "op": "within_last_days", "value": 7}) == {"ann"}
    assert ids({"field": "order.last_at", "op": "more_than_days_ago", "value": 7}) == set()
    assert ids(
        {"field": "order.first_at", "op": "before", "value": (NOW - timedelta(days=50)).date().isoformat()}
    ) == {"ann"}
    assert ids({"field": "order.count", "where": {"sku": "BOOK"}, "op": "gte", "value": 1}) == {"ann"}
    assert ids({"field": "order.count", "where": {"category": "Home"}, "op": "gte", "value": 1}) == {"ann"}
    assert (
        ids(
            {
                "field": "order.count",
                "where": {"category": "Books", "within_days": 30},
                "op": "gte",
                "value": 1,
            }
        )
        == set()
    )


def test_loyalty(people):
    club = LoyaltyProgramFactory(slug="club")
    gold = TierFactory(program=club, name="Gold", threshold=1000)
    ann = MembershipFactory(program=club, customer=people["ann"], tier=gold, balance=1500)
    MembershipFactory(program=club, customer=people["bob"], balance=20)
    earn = PointsTransaction.objects.create(
        membership=ann, kind="earn", points=300, balance_after=1500, idempotency_key="k1", occurred_at=NOW
    )
    PointsLot.objects.create(
        membership=ann, earned_by=earn, remaining=300, expires_at=NOW + timedelta(days=10)
    )
    assert ids({"field": "loyalty.program", "op": "eq", "value": "club"}) == {"ann", "bob"}
    assert ids({"field": "loyalty.program", "op": "is_not_set"}) == {"cat"}
    assert ids({"field": "loyalty.tier", "where": {"program": "club"}, "op": "eq", "value": "Gold"}) == {
        "ann"
    }
    assert ids({"field": "loyalty.tier", "op": "neq", "value": "Gold"}) == {"bob", "cat"}
    assert ids({"field": "loyalty.points_balance", "op": "gte", "value": 1000}) == {"ann"}
    assert ids({"field": "loyalty.points_balance", "op": "lt", "value": 100}) == {"bob", "cat"}
    expiring = {"field": "loyalty.points_expiring", "op": "gte", "value": 100}
    assert ids({**expiring, "where": {"within_days": 30}}) == {"ann"}
    assert ids({**expiring, "where": {"within_days": 5}}) == set()
    soon = (NOW + timedelta(days=11)).date().isoformat()
    assert ids({**expiring, "where": {"before": soon, "program": "club"}}) == {"ann"}


def test_features(people):
    CustomerFeatures.objects.create(
        customer=people["ann"],
        rfm_group="Champions",
        cluster=2,
        churn_probability=0.1,
        predicted_clv=Decimal("900"),
    )
    CustomerFeatures.objects.create(
        customer=people["bob"], rfm_group="At risk", cluster=1, churn_probability=0.8
    )
    assert ids({"field": "rfm.group", "op": "eq", "value": "Champions"}) == {"ann"}
    assert ids({"field": "features.rfm_group", "op": "neq", "value": "Champions"}) == {"bob", "cat"}
    assert ids({"field": "cluster", "op": "in", "value": [1, 3]}) == {"bob"}
    assert ids({"field": "churn_probability", "op": "gt", "value": 0.5}) == {"bob"}
    assert ids({"field": "predicted_clv", "op": "gte", "value": 500}) == {"ann"}
    assert ids({"field": "predicted_clv", "op": "is_not_set"}) == {"bob", "cat"}


def test_segment_membership_and_groups(people):
    other = Segment.objects.create(name="Other", kind=Segment.Kind.STATIC)
    SegmentMembership.objects.create(segment=other, customer=people["bob"], entered_at=NOW)
    SegmentMembership.objects.create(
        segment=other, customer=people["ann"], entered_at=NOW - timedelta(days=2), exited_at=NOW
    )
    assert ids({"field": "segment", "op": "in", "value": [other.pk]}) == {"bob"}
    assert ids({"field": "segment", "op": "not_in", "value": [other.pk]}) == {"ann", "cat"}
    rule = {
        "any": [
            {
                "all": [
                    {"field": "customer.country", "op": "eq", "value": "GB"},
                    {"not": {"field": "customer.email", "op": "is_not_set"}},
                ]
            },
            {"field": "segment", "op": "in", "value": [other.pk]},
        ]
    }
    assert ids(rule) == {"ann", "bob"}
    assert ids({"not": rule}) == {"cat"}
    assert ids({"any": []}) == set()
    assert ids({"all": []}) == {"ann", "bob", "cat"}
    assert ids({"any": [{"all": []}, {"field": "customer.country", "op": "eq", "value": "XX"}]}) == {
        "ann",
        "bob",
        "cat",
    }


def test_scope_restricts_every_subquery(people):
    EventFactory(customer=people["ann"], type="view", occurred_at=NOW)
    rule = {"field": "event.count", "op": "lt", "value": 1}
    assert ids(rule, scope=[people["ann"].pk, people["cat"].pk]) == {"cat"}
    sql = str(matching_customers(rule, scope=[people["ann"].pk]).query)
    assert sql.count(str(people["ann"].pk)) >= 2  # in the outer filter and inside the aggregate


def test_one_query_whatever_the_rule(people):
    rule = {
        "all": [
            {"field": "event.count", "where": {"type": "view"}, "op": "gte", "value": 2},
            {"field": "order.revenue", "op": "lt", "value": 10},
            {"field": "consent.email", "op": "eq", "value": "granted"},
            {"not": {"field": "loyalty.tier", "op": "eq", "value": "Gold"}},
        ]
    }
    with CaptureQueriesContext(connection) as queries:
        list(matching_customers(rule, now=NOW))
    # One query over the customers; before it, at most the rollups' as_of and their swap lock.
    evaluated = [
        q
        for q in queries.captured_queries
        if "segments_rollupstate" not in q["sql"] and "advisory" not in q["sql"]
    ]
    assert len(evaluated) == 1 and len(queries) <= 3


def test_compile_refuses_an_invalid_rule():
    with pytest.raises(RuleValidationError) as caught:
        compile_rule(
            {"field": "customer.country", "op": "gt", "value": 1}, now=datetime(2025, 1, 1, tzinfo=UTC)
        )
    assert caught.value.errors[0].path == "$.op"
