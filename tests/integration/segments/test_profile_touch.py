"""Profile edits reach dynamic segments without waiting for the hourly full refresh: an API PATCH,
a bulk upsert, a consent decision, a soft delete and an admin edit mark the customer touched, and
the (eager, in tests) drain refreshes the segments for that customer only."""

from __future__ import annotations

import pytest

from segments import services
from segments.models import Segment, SegmentMembership, TouchedCustomer
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


def dynamic(name: str, rules: dict) -> Segment:
    segment = Segment.objects.create(name=name, kind=Segment.Kind.DYNAMIC, rules=rules)
    services.refresh_segment(segment_id=segment.pk)
    return segment


def members(segment) -> set[str]:
    return set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "customer__external_id", flat=True
        )
    )


@pytest.fixture
def people():
    return [CustomerFactory(external_id=f"p{i}", country="FR", attributes={"plan": "free"}) for i in range(3)]


def test_api_patch_and_bulk_upsert_touch_the_customer(api, people, django_capture_on_commit_callbacks):
    uk = dynamic("UK", {"field": "customer.country", "op": "eq", "value": "GB"})
    pro = dynamic("Pro", {"field": "attributes.plan", "op": "eq", "value": "pro"})
    assert members(uk) == members(pro) == set()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch("/api/v1/customers/p0/", {"country": "GB"}, format="json")
    assert response.status_code == 200, response.json()
    assert members(uk) == {"p0"}  # no full refresh ran: the drain did it
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/customers/bulk/",
            {
                "rows": [
                    {"external_id": "p1", "attributes": {"plan": "pro"}},
                    {"external_id": "new", "country": "GB"},
                ]
            },
            format="json",
        )
    assert response.status_code in (200, 207), response.json()
    assert members(pro) == {"p1"}
    assert members(uk) == {"p0", "new"}  # a created customer enters too
    assert not TouchedCustomer.objects.exists()


def test_consent_and_soft_delete_touch_the_customer(api, people, django_capture_on_commit_callbacks):
    reachable = dynamic("Reachable", {"field": "consent.email", "op": "eq", "value": "granted"})
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/customers/p2/consent/",
            {"channel": "email", "action": "granted", "source": "test"},
            format="json",
        )
    assert response.status_code == 201, response.json()
    assert members(reachable) == {"p2"}
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete("/api/v1/customers/p2/").status_code == 204
    assert members(reachable) == set()


def test_admin_edit_touches_the_customer(client, admin_user, people, django_capture_on_commit_callbacks):
    uk = dynamic("UK", {"field": "customer.country", "op": "eq", "value": "GB"})
    customer = people[0]
    client.force_login(admin_user)
    form = {
        "external_id": customer.external_id,
        "email": customer.email,
        "phone": "",
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "locale": customer.locale,
        "timezone": customer.timezone,
        "country": "GB",
        "attributes": '{"plan": "free"}',
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        "push_subscriptions-TOTAL_FORMS": "0",
        "push_subscriptions-INITIAL_FORMS": "0",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/customers/customer/{customer.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert members(uk) == {customer.external_id}
