from decimal import Decimal

import pytest

from catalog.models import Category, Product
from catalog.services import upsert_products
from customers.models import Event, Order, OrderLine
from customers.services import ingest_events, ingest_orders
from loyalty.models import PointsTransaction
from tests.factories.catalog import ProductFactory
from tests.factories.customers import CustomerFactory
from tests.factories.loyalty import MembershipFactory, TierFactory

pytestmark = pytest.mark.django_db


# --- products -------------------------------------------------------------------------------------


def test_products_upsert_with_category_paths(django_assert_max_num_queries):
    rows = [
        {"sku": f"P{i}", "name": f"Mug {i}", "price": "4.50", "category": "Home > Kitchen > Mugs", "stock": 3}
        for i in range(30)
    ]
    with django_assert_max_num_queries(12):
        result = upsert_products(rows=rows)
    assert result.created == 30
    assert list(Category.objects.values_list("path", "depth")) == [
        ("Home", 0),
        ("Home > Kitchen", 1),
        ("Home > Kitchen > Mugs", 2),
    ]
    mugs = Category.objects.get(path="Home > Kitchen > Mugs")
    assert mugs.parent.path == "Home > Kitchen"
    assert Product.objects.get(sku="P1").category == mugs
    again = upsert_products(rows=rows)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 30)
    changed = upsert_products(rows=[{"sku": "P1", "price": 5}])
    assert changed.updated == 1 and Product.objects.get(sku="P1").price == Decimal("5.00")


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"sku": "N1", "name": "x", "price": -1}, "price"),
        ({"sku": "N1", "name": "x", "price": "abc"}, "price"),
        ({"sku": "N1", "name": "x", "price": 1.234}, "price"),
        ({"sku": "N1", "name": "x", "price": 1, "currency": "ZZZ"}, "currency"),
        ({"sku": "N1", "name": "x", "price": 1, "url": "ftp://x"}, "url"),
        ({"sku": "N1", "name": "x", "price": 1, "stock": -2}, "stock"),
        ({"sku": "N1", "price": 1}, "name"),
        ({"sku": "N1", "name": "x", "price": "NaN"}, "price"),
    ],
)
def test_bad_products(row, field):
    result = upsert_products(rows=[row])
    assert result.rejected and result.errors[0].field == field
    assert not Product.objects.exists()


# --- events ---------------------------------------------------------------------------------------


def event(key, customer="c1", **extra):
    return {
        "idempotency_key": key,
        "customer": customer,
        "type": "view",
        "occurred_at": "2024-03-01T10:00:00Z",
        **extra,
    }


def test_events_are_counted_once_and_conflicts_reported(django_assert_max_num_queries):
    CustomerFactory(external_id="c1")
    ProductFactory(sku="S1")
    batch = [event(f"k{i}", product="S1") for i in range(100)]
    with django_assert_max_num_queries(10):
        result = ingest_events(rows=batch)
    assert result.created == 100
    replay = ingest_events(rows=batch)
    assert (replay.created, replay.unchanged, replay.errors) == (0, 100, [])
    assert Event.objects.count() == 100

    conflict = ingest_events(rows=[event("k1", type="add_to_cart")])
    assert conflict.rejected and conflict.conflict_only
    assert conflict.errors[0].field == "idempotency_key"


def test_unknown_customer_and_product_are_row_errors():
    CustomerFactory(external_id="c1")
    result = ingest_events(rows=[event("a"), event("b", customer="ghost"), event("c", product="nope")])
    assert result.rejected and Event.objects.count() == 0
    assert [(e.index, e.field, e.code) for e in result.errors] == [
        (1, "customer", "unknown_customer"),
        (2, "product", "unknown_product"),
    ]
    partial = ingest_events(rows=[event("a"), event("b", customer="ghost")], partial=True)
    assert (partial.created, partial.failed) == (1, 1)


def test_event_points_by_program_rule():
    customer = CustomerFactory(external_id="c1")
    membership = MembershipFactory(customer=customer, program__event_points={"review": 50, "view": 1})
    ingest_events(rows=[event("r1", type="custom", name="review"), event("v1")])
    ingest_events(rows=[event("r1", type="custom", name="review")])
    membership.refresh_from_db()
    assert membership.balance == 51
    assert PointsTransaction.objects.filter(source_type="event").count() == 2


# --- orders ---------------------------------------------------------------------------------------


def order(external_id, lines, customer="c1", **extra):
    return {
        "external_id": external_id,
        "customer": customer,
        "placed_at": "2024-03-01T10:00:00Z",
        "lines": lines,
        **extra,
    }


def test_orders_with_lines_points_and_clawback(django_assert_max_num_queries):
    customer = CustomerFactory(external_id="c1")
    ProductFactory(sku="A", price=Decimal("10.00"))
    ProductFactory(sku="B", price=Decimal("2.50"))
    gold = TierFactory(name="Gold", threshold=0, multiplier=Decimal("2"))
    membership = MembershipFactory(customer=customer, program=gold.program, tier=gold)
    batch = [
        order(
            "o1",
            [
                {"sku": "A", "quantity": 2, "unit_price": "10.00"},
                {"sku": "B", "quantity": 1, "unit_price": "2.50"},
            ],
        )
    ]
    with django_assert_max_num_queries(20):
        result = ingest_orders(rows=batch)
    assert result.created == 1
    stored = Order.objects.get(external_id="o1")
    assert stored.total == Decimal("22.50") and stored.lines.count() == 2
    membership.refresh_from_db()
    assert membership.balance == 45  # floor(22.50 × 1 × 2)

    assert ingest_orders(rows=batch).unchanged == 1
    membership.refresh_from_db()
    assert membership.balance == 45

    refund = ingest_orders(rows=[order("o1-r", [{"sku": "A", "quantity": -1, "unit_price": "10.00"}])])
    assert refund.created == 1
    line = OrderLine.objects.get(order__external_id="o1-r")
    assert (line.kind, line.quantity) == ("return", -1)
    membership.refresh_from_db()
    assert (membership.balance, membership.lifetime_points) == (25, 25)


def test_order_validation_and_conflicts():
    CustomerFactory(external_id="c1")
    ProductFactory(sku="A")
    ingest_orders(rows=[order("o1", [{"sku": "A", "quantity": 1, "unit_price": "1.00"}])])
    bad = [
        order("o1", [{"sku": "A", "quantity": 5, "unit_price": "1.00"}]),
        order("o2", [{"sku": "A", "quantity": 0, "unit_price": "1.00"}]),
        order("o3", [{"sku": "A", "quantity": 1, "unit_price": "-1"}]),
        order("o4", [{"sku": "Z", "quantity": 1, "unit_price": "1"}]),
        order("o5", [{"sku": "A", "quantity": 1, "unit_price": "1"}], customer="ghost"),
        order("o6", [], currency="XXX"),
        order("o7", [{"sku": "A", "quantity": 1, "unit_price": "1", "kind": "return"}]),
    ]
    result = ingest_orders(rows=bad)
    assert result.rejected
    found = {(e.index, e.field, e.code) for e in result.errors}
    assert found >= {
        (0, "external_id", "conflict"),
        (1, "lines[0].quantity", "invalid"),
        (2, "lines[0].unit_price", "invalid"),
        (3, "lines[0].sku", "unknown_product"),
        (4, "customer", "unknown_customer"),
        (5, "currency", "invalid"),
        (5, "lines", "invalid"),
        (6, "lines[0].quantity", "invalid"),
    }
    assert Order.objects.count() == 1
