import pytest

from access.models import AuditEntry
from customers.models import ConsentRecord, Customer, Suppression
from customers.selectors import is_suppressed
from customers.services import (
    erase_customer,
    export_customer,
    record_consent,
    suppress_address,
    upsert_customers,
)
from loyalty.services import award_points
from tests.factories.catalog import ProductFactory
from tests.factories.customers import CustomerFactory, EventFactory, PushSubscriptionFactory, make_order
from tests.factories.loyalty import MembershipFactory
from webhooks.models import OutboxMessage

pytestmark = pytest.mark.django_db


def test_export_has_every_section():
    customer = CustomerFactory(external_id="ext-1", email="ada@example.com")
    record_consent(customer=customer, channel="email", action="granted", source="form", ip="10.0.0.1")
    make_order(customer=customer, lines=[(ProductFactory(sku="A"), 2)])
    EventFactory(customer=customer, properties={"q": "mugs"})
    PushSubscriptionFactory(customer=customer)
    award_points(membership=MembershipFactory(customer=customer), points=5, idempotency_key="x")
    data = export_customer(customer=customer)
    assert data["profile"]["email"] == "ada@example.com"
    assert data["consent"]["history"][0]["ip"] == "10.0.0.1"
    assert data["orders"][0]["lines"][0]["sku"] == "A"
    assert data["events"][0]["properties"] == {"q": "mugs"}
    assert len(data["push_subscriptions"]) == 1
    assert data["loyalty"][0]["balance"] == 5


def test_erase_removes_personal_data_and_keeps_address_suppressed(admin_user):
    customer = CustomerFactory(external_id="ext-2", email="Erase.Me@Example.com", phone="+441234")
    record_consent(customer=customer, channel="email", action="granted", source="form", ip="10.0.0.1")
    suppress_address(address="erase.me@example.com", reason="unsubscribed")
    EventFactory(customer=customer, properties={"q": "secret"})
    PushSubscriptionFactory(customer=customer)
    erase_customer(customer=customer, actor=admin_user)

    stored = Customer.all_objects.get(pk=customer.pk)
    assert (
        stored.erased_at
        and stored.email == ""
        and stored.first_name == ""
        and stored.external_id == f"erased-{stored.pk}"
    )
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert stored.events.get().properties == {}
    assert not stored.push_subscriptions.exists()
    assert ConsentRecord.objects.get(customer=stored).ip is None
    assert Suppression.objects.get(channel="email").reason == "erased"
    assert AuditEntry.objects.get(action="customer.erased").actor == admin_user
    erased = OutboxMessage.objects.get(topic="customer.erased")
    assert erased.payload["external_id"] == "ext-2"

    upsert_customers(rows=[{"external_id": "ext-2", "email": "erase.me@example.com"}])
    assert Customer.objects.get(external_id="ext-2").pk != stored.pk
    assert is_suppressed(address="ERASE.ME@example.com")
    erase_customer(customer=stored)  # a second erasure is a no-op
    assert AuditEntry.objects.filter(action="customer.erased").count() == 1


def test_an_erased_record_is_never_filled_again():
    customer = CustomerFactory()
    erase_customer(customer=customer)
    erased_id = f"erased-{customer.pk}"
    result = upsert_customers(rows=[{"external_id": erased_id, "email": "back@example.com"}])
    assert result.unchanged == 1
    assert Customer.all_objects.get(pk=customer.pk).email == ""
