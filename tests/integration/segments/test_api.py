"""The segment API: CRUD with rule errors as 400 field errors, preview, members, export, refresh,
uploads and scopes."""

from __future__ import annotations

import pytest

from segments.models import Segment, SegmentMembership
from segments.services import refresh_segment
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db
GB = {"field": "customer.country", "op": "eq", "value": "GB"}


@pytest.fixture
def customers():
    return [CustomerFactory(external_id=f"c{i}", country="GB" if i % 2 else "FR") for i in range(6)]


def test_create_refreshes_and_lists(api, customers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/segments/", {"name": "UK", "rules": GB}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["kind"] == "dynamic"
    segment = Segment.objects.get(pk=body["id"])
    assert segment.member_count == 3 and segment.refresh_state == "idle"  # the eager task ran
    listed = api.get("/api/v1/segments/").json()
    assert [s["name"] for s in listed["results"]] == ["UK"]


@pytest.mark.parametrize(
    ("payload", "field", "needle"),
    [
        (
            {"name": "X", "rules": {"field": "customer.nope", "op": "eq", "value": 1}},
            "rules",
            "$.field: Unknown field",
        ),
        (
            {"name": "X", "rules": {"all": [{"field": "order.count", "op": "gte", "value": "2"}]}},
            "rules",
            "$.all[0].value",
        ),
        ({"name": "X"}, "rules", "needs rules"),
        ({"name": "X", "kind": "static", "rules": GB}, "rules", "static segment has no rules"),
        ({"name": "X", "rules": GB, "colour": "red"}, "colour", "Unknown field"),
        (
            {"name": "X", "rules": {"field": "segment", "op": "in", "value": [99999]}},
            "rules",
            "Unknown segment 99999",
        ),
    ],
)
def test_bad_input_is_400_with_field_errors(api, payload, field, needle):
    response = api.post("/api/v1/segments/", payload, format="json")
    assert response.status_code == 400
    errors = response.json()[field]
    assert any(needle in message for message in errors), errors
    assert not Segment.objects.exists()


def test_cycle_on_update_is_400(api):
    a = Segment.objects.create(name="A", rules={"all": []})
    b = Segment.objects.create(name="B", rules={"field": "segment", "op": "in", "value": [a.pk]})
    response = api.patch(
        f"/api/v1/segments/{a.pk}/",
        {"rules": {"field": "segment", "op": "in", "value": [b.pk]}},
        format="json",
    )
    assert response.status_code == 400
    assert "Cyclic segment references" in response.json()["rules"][0]
    kind = api.patch(f"/api/v1/segments/{a.pk}/", {"kind": "static"}, format="json")
    assert kind.status_code == 400 and "cannot change" in kind.json()["kind"][0]
    blocked = api.delete(f"/api/v1/segments/{a.pk}/")
    assert blocked.status_code == 409
    assert api.delete(f"/api/v1/segments/{b.pk}/").status_code == 204
    assert api.delete(f"/api/v1/segments/{a.pk}/").status_code == 204


def test_preview(api, customers):
    response = api.post("/api/v1/segments/preview/", {"rules": GB, "sample_size": 2}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and len(body["sample"]) == 2
    assert set(body["sample"][0]) == {"id", "external_id", "email", "first_name", "last_name", "country"}
    bad = api.post("/api/v1/segments/preview/", {"rules": {"field": "x"}}, format="json")
    assert bad.status_code == 400 and bad.json()["rules"]
    assert (
        api.post("/api/v1/segments/preview/", {"rules": GB, "sample_size": 500}, format="json").status_code
        == 400
    )
    assert api.post("/api/v1/segments/preview/", [1, 2], format="json").status_code == 400
    segment = Segment.objects.create(name="UK", rules=GB)
    assert api.get(f"/api/v1/segments/{segment.pk}/preview/").json()["count"] == 3


def test_members_are_cursor_paginated_and_exported_as_csv(api, customers):
    segment = Segment.objects.create(name="UK", rules=GB)
    refresh_segment(segment_id=segment.pk)
    first = api.get(f"/api/v1/segments/{segment.pk}/members/?page_size=2").json()
    assert len(first["results"]) == 2 and first["next"]
    second = api.get(first["next"]).json()
    ids = {r["external_id"] for r in first["results"] + second["results"]}
    assert ids == {"c1", "c3", "c5"}
    assert api.get(f"/api/v1/segments/{segment.pk}/members/?cursor=garbage").status_code == 400
    response = api.get(f"/api/v1/segments/{segment.pk}/export/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert lines[0].startswith("customer_id,external_id,email") and len(lines) == 4


def test_refresh_action(api, customers, django_capture_on_commit_callbacks):
    segment = Segment.objects.create(name="UK", rules=GB)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/segments/{segment.pk}/refresh/")
    assert response.status_code == 202 and response.json()["refresh_state"] == "queued"
    segment.refresh_from_db()
    assert segment.member_count == 3
    static = Segment.objects.create(name="List", kind="static")
    assert api.post(f"/api/v1/segments/{static.pk}/refresh/").status_code == 400
    assert api.post("/api/v1/segments/99999/refresh/").status_code == 404


def test_static_upload(api, customers):
    static = api.post("/api/v1/segments/", {"name": "List", "kind": "static"}, format="json").json()
    response = api.post(
        f"/api/v1/segments/{static['id']}/upload/", {"identifiers": ["c0", "c1", "ghost"]}, format="json"
    )
    assert response.status_code == 200
    assert response.json() | {} == {
        "received": 3,
        "matched": 2,
        "unmatched_count": 1,
        "unmatched": ["ghost"],
        "entered": 2,
        "exited": 0,
        "member_count": 2,
    }
    assert SegmentMembership.objects.filter(segment_id=static["id"], exited_at__isnull=True).count() == 2
    url = f"/api/v1/segments/{static['id']}/upload/"
    bad = api.post(url, {"identifiers": "c0"}, format="json")
    assert bad.status_code == 400 and "identifiers" in bad.json()
    bad = api.post(url, {"identifiers": ["c0"], "mode": "x"}, format="json")
    assert bad.status_code == 400 and "mode" in bad.json()
    uk = Segment.objects.create(name="UK", rules=GB)
    refused = api.post(f"/api/v1/segments/{uk.pk}/upload/", {"identifiers": ["c0"]}, format="json")
    assert refused.status_code == 400 and "segment" in refused.json()


def test_scopes(make_api_client, customers):
    segment = Segment.objects.create(name="UK", rules=GB)
    reader = make_api_client("segments:read")
    assert reader.get("/api/v1/segments/").status_code == 200
    assert reader.post("/api/v1/segments/preview/", {"rules": GB}, format="json").status_code == 200
    assert reader.get(f"/api/v1/segments/{segment.pk}/members/").status_code == 200
    assert reader.post("/api/v1/segments/", {"name": "X", "rules": GB}, format="json").status_code == 403
    assert reader.post(f"/api/v1/segments/{segment.pk}/refresh/").status_code == 403
    outsider = make_api_client("customers:read")
    assert outsider.get("/api/v1/segments/").status_code == 403
    assert outsider.post("/api/v1/segments/preview/", {"rules": GB}, format="json").status_code == 403
