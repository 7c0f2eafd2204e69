"""Factories for customers and what they do. Other areas reuse these: keep them general."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory

from customers.models import (
    Channel,
    ConsentStatus,
    Customer,
    CustomerConsent,
    Event,
    EventType,
    Order,
    OrderLine,
    PushSubscription,
)
from tests.factories.catalog import ProductFactory

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"cust-{n:06d}")
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@example.com")
    first_name = factory.Sequence(lambda n: f"Ada{n}")
    last_name = "Lovelace"
    locale = "en-GB"
    timezone = "Europe/London"
    country = "GB"
    attributes = factory.LazyFunction(dict)


class CustomerConsentFactory(factory.django.DjangoModelFactory):
    """Current consent state only (no ledger row): for tests of readers of the state."""

    class Meta:
        model = CustomerConsent

    customer = factory.SubFactory(CustomerFactory)
    channel = Channel.EMAIL
    status = ConsentStatus.GRANTED
    source = "test"
    changed_at = BASE_TIME


class PushSubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PushSubscription

    customer = factory.SubFactory(CustomerFactory)
    endpoint = factory.Sequence(lambda n: f"https://push.example.com/sub/{n}")
    p256dh = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
    auth = "tBHItJI5svbpez7KI4CCXg"


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    external_id = factory.Sequence(lambda n: f"order-{n:06d}")
    customer = factory.SubFactory(CustomerFactory)
    placed_at = factory.Sequence(lambda n: BASE_TIME + timedelta(hours=n))
    currency = "GBP"
    total = Decimal("0")


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    line_no = factory.Sequence(lambda n: n + 1)
    product = factory.SubFactory(ProductFactory)
    sku = factory.LazyAttribute(lambda o: o.product.sku if o.product else "SKU")
    kind = OrderLine.Kind.SALE
    quantity = 1
    unit_price = factory.LazyAttribute(lambda o: o.product.price if o.product else Decimal("1.00"))


def make_order(*, customer=None, lines=(), placed_at=None, **kwargs) -> Order:
    """An order with lines [(product, quantity)] and its total, as the ingest would store it."""
    order = OrderFactory(
        customer=customer or CustomerFactory(), **({"placed_at": placed_at} if placed_at else {}), **kwargs
    )
    total = Decimal(0)
    for line_no, (product, quantity) in enumerate(lines, start=1):
        kind = OrderLine.Kind.SALE if quantity > 0 else OrderLine.Kind.RETURN
        OrderLineFactory(order=order, line_no=line_no, product=product, quantity=quantity, kind=kind)
        total += product.price * quantity
    order.total = total
    order.save(update_fields=["total"])
    return order


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    customer = factory.SubFactory(CustomerFactory)
    type = EventType.VIEW
    product = factory.SubFactory(ProductFactory)
    occurred_at = factory.Sequence(lambda n: BASE_TIME + timedelta(minutes=n))
    idempotency_key = factory.Sequence(lambda n: f"evt-{n:08d}")
