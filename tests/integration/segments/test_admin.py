"""The segment admin: rule editor with live preview (session auth), uploads, members, refresh, roles."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from access.models import AuditEntry
from segments.models import Segment, SegmentMembership
from segments.services import refresh_segment
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db
GB = {"field": "customer.country", "op": "eq", "value": "GB"}


def login(django_user_model, role: str) -> Client:
    user = django_user_model.objects.create_user(
        role.lower(), f"{role}@example.com", "pass-123-xyz", is_staff=True
    )
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.fixture
def people():
    return [CustomerFactory(external_id=f"p{i}", country="GB" if i < 2 else "FR") for i in range(3)]


def test_marketer_creates_a_segment_with_live_preview(
    django_user_model, people, django_capture_on_commit_callbacks
):
    marketer = login(django_user_model, "Marketer")
    page = marketer.get("/admin/segments/segment/add/")
    assert page.status_code == 200
    content = page.content.decode()
    assert (
        "segment-preview-box" in content
        and "rule_builder.js" in content
        and "/api/v1/segments/preview/" in content
    )
    token = page.cookies["csrftoken"].value
    # The editor's script: the preview API with the admin session and the CSRF token.
    preview = marketer.post(
        "/api/v1/segments/preview/", {"rules": GB}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert preview.status_code == 200 and preview.json()["count"] == 2
    bad = marketer.post(
        "/api/v1/segments/preview/",
        {"rules": {"field": "customer.country", "op": "gt", "value": 1}},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert bad.status_code == 400 and bad.json()["rules"][0].startswith("$.op:")
    form = {
        "name": "UK",
        "description": "",
        "kind": "dynamic",
        "active": "on",
        "rules": '{"field": "customer.country", "op": "eq", "value": "GB"}',
        "csrfmiddlewaretoken": token,
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = marketer.post("/admin/segments/segment/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    segment = Segment.objects.get(name="UK")
    assert segment.member_count == 2  # refreshed on save
    assert AuditEntry.objects.filter(action="segment.created", target_id=str(segment.pk)).exists()
    broken = marketer.post(
        f"/admin/segments/segment/{segment.pk}/change/",
        {**form, "rules": '{"field": "customer.nope", "op": "eq", "value": 1}'},
    )
    assert broken.status_code == 200 and "$.field: Unknown field" in broken.content.decode()


def test_analyst_reads_but_cannot_change(django_user_model, people):
    segment = Segment.objects.create(name="UK", rules=GB)
    refresh_segment(segment_id=segment.pk)
    analyst = login(django_user_model, "Analyst")
    assert analyst.get("/admin/segments/segment/").status_code == 200
    view = analyst.get(f"/admin/segments/segment/{segment.pk}/change/")
    assert view.status_code == 200 and 'name="rules"' not in view.content.decode()
    assert analyst.get("/admin/segments/segment/add/").status_code == 403
    members = analyst.get(f"/admin/segments/segment/{segment.pk}/members/")
    assert members.status_code == 200 and "p0" in members.content.decode()
    assert analyst.get(f"/admin/segments/segment/{segment.pk}/upload/").status_code == 403


def test_static_upload_and_refresh_action(django_user_model, people, django_capture_on_commit_callbacks):
    marketer = login(django_user_model, "Marketer")
    static = Segment.objects.create(name="List", kind="static")
    page = marketer.get(f"/admin/segments/segment/{static.pk}/upload/")
    token = page.cookies["csrftoken"].value
    response = marketer.post(
        f"/admin/segments/segment/{static.pk}/upload/",
        {
            "identifiers": "p0\np2\nghost",
            "match_on": "external_id",
            "mode": "replace",
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 200
    assert "ghost" in response.content.decode()
    assert SegmentMembership.objects.filter(segment=static, exited_at__isnull=True).count() == 2
    uk = Segment.objects.create(name="UK", rules=GB)
    with django_capture_on_commit_callbacks(execute=True):
        done = marketer.post(
            "/admin/segments/segment/",
            {"action": "refresh_selected", "_selected_action": [uk.pk], "csrfmiddlewaretoken": token},
        )
    assert done.status_code == 302
    uk.refresh_from_db()
    assert uk.member_count == 2 and uk.refresh_state == "idle"
