"""The campaign API with real keys and scopes: CRUD, status changes, test sends, report, preview."""

from __future__ import annotations

import pytest
from django.core import mail

from access.models import AuditEntry
from campaigns.models import Campaign, CampaignStatus, Send, SendState
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db

HTML = '<p>Hello {{ customer.first_name }}</p>\n<a href="https://shop.example.com/">Shop</a>'


@pytest.fixture
def audience(db):
    customers = scenario.make_customers(15)
    return customers, scenario.make_segment(customers)


def create(api, segment, **overrides):
    payload = {
        "name": "Autumn",
        "channel": "email",
        "include_segments": [segment.pk],
        "from_email": "news@shop.example.com",
        "variants": [
            {"name": "A", "weight": 1, "subject": "Hi {{ customer.first_name }}", "html": HTML},
            {"name": "B", "weight": 2, "subject": "Hello {{ customer.first_name }}", "html": HTML},
        ],
        **overrides,
    }
    return api.post("/api/v1/campaigns/", payload, format="json")


def test_create_read_and_change_a_draft(api, audience):
    _, segment = audience
    response = create(api, segment)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "draft" and [v["name"] for v in body["variants"]] == ["A", "B"]
    changed = api.patch(
        f"/api/v1/campaigns/{body['id']}/", {"variants": [{"name": "A", "subject": "New"}]}, format="json"
    )
    assert changed.status_code == 200
    assert [v["subject"] for v in changed.json()["variants"]] == ["New"]
    assert api.get(f"/api/v1/campaigns/{body['id']}/").json()["name"] == "Autumn"
    assert AuditEntry.objects.filter(action="campaign.changed").count() == 1


def test_bad_input_gets_field_errors(api, audience):
    _, segment = audience
    bad = create(api, segment, cron="every day", schedule_timezone="Mars/Olympus", control_percent="80")
    assert bad.status_code == 400
    errors = bad.json()
    assert {"cron", "schedule_timezone", "control_percent"} <= set(errors)
    many = create(api, segment, variants=[{"name": str(i), "subject": "x", "html": "y"} for i in range(9)])
    assert many.status_code == 400 and "variants" in many.json()
    same = create(api, segment, variants=[{"name": "A"}, {"name": "A"}])
    assert same.status_code == 400


def test_scopes_are_enforced(make_api_client, audience):
    _, segment = audience
    reader = make_api_client("campaigns:read", name="reader")
    assert reader.get("/api/v1/campaigns/").status_code == 200
    assert create(reader, segment).status_code == 403
    outsider = make_api_client("customers:read", name="outsider")
    assert outsider.get("/api/v1/campaigns/").status_code == 403
    assert outsider.post("/api/v1/templates/preview/", {"html": "x"}, format="json").status_code == 403


def test_launch_pause_resume_cancel_are_audited_and_checked(
    api, audience, django_capture_on_commit_callbacks
):
    _, segment = audience
    campaign_id = create(api, segment).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        launched = api.post(f"/api/v1/campaigns/{campaign_id}/launch/")
    assert launched.status_code == 200 and launched.json()["status"] == "sending"
    # The eager test settings ran the ledger writer and the sender inline.
    assert Send.objects.filter(campaign_id=campaign_id, state=SendState.SENT).count() == 15
    assert len(mail.outbox) == 15
    assert api.post(f"/api/v1/campaigns/{campaign_id}/launch/").status_code == 409
    assert api.post(f"/api/v1/campaigns/{campaign_id}/pause/").status_code == 409  # it is already sent
    assert api.patch(f"/api/v1/campaigns/{campaign_id}/", {"name": "x"}, format="json").status_code == 409

    other = create(api, segment, schedule_kind="at", send_at="2099-01-01T09:00:00Z").json()["id"]
    assert api.post(f"/api/v1/campaigns/{other}/launch/").json()["status"] == "scheduled"
    paused = api.post(f"/api/v1/campaigns/{other}/pause/", {"reason": "legal review"}, format="json")
    assert paused.json()["status"] == "paused" and paused.json()["status_reason"] == "legal review"
    assert api.post(f"/api/v1/campaigns/{other}/resume/").json()["status"] == "scheduled"
    assert api.post(f"/api/v1/campaigns/{other}/cancel/").json()["status"] == "cancelled"
    assert api.post(f"/api/v1/campaigns/{other}/resume/").status_code == 409
    actions = list(
        AuditEntry.objects.filter(target_id=str(other)).order_by("id").values_list("action", flat=True)
    )
    assert actions == [
        "campaign.created",
        "campaign.launched",
        "campaign.paused",
        "campaign.resumed",
        "campaign.cancelled",
    ]


def test_launch_problems_are_field_errors(api, db):
    response = api.post("/api/v1/campaigns/", {"name": "Empty", "variants": [{"name": "A"}]}, format="json")
    campaign_id = response.json()["id"]
    problems = api.post(f"/api/v1/campaigns/{campaign_id}/launch/")
    assert problems.status_code == 400
    assert set(problems.json()) == {"variants", "include_segments"}
    assert Campaign.objects.get(pk=campaign_id).status == CampaignStatus.DRAFT


def test_test_send_goes_to_the_given_addresses_only(api, audience, django_capture_on_commit_callbacks):
    customers, segment = audience
    campaign_id = create(api, segment).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/campaigns/{campaign_id}/test-send/",
            {
                "addresses": ["qa@example.com", "boss@example.com"],
                "variant": "B",
                "customer": customers[0].external_id,
            },
            format="json",
        )
    assert response.status_code == 202, response.content
    assert sorted(m.to[0] for m in mail.outbox) == ["boss@example.com", "qa@example.com"]
    assert mail.outbox[0].subject == f"[TEST] Hello {customers[0].first_name}"
    assert Send.objects.count() == 0  # nothing in the ledger
    assert (
        api.post(
            f"/api/v1/campaigns/{campaign_id}/test-send/", {"addresses": ["nope"]}, format="json"
        ).status_code
        == 400
    )
    too_many = {"addresses": [f"a{i}@example.com" for i in range(11)]}
    assert api.post(f"/api/v1/campaigns/{campaign_id}/test-send/", too_many, format="json").status_code == 400


def test_report_and_progress(api, audience, django_capture_on_commit_callbacks):
    _, segment = audience
    campaign_id = create(api, segment).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/v1/campaigns/{campaign_id}/launch/")
    report = api.get(f"/api/v1/campaigns/{campaign_id}/report/?bucket=hour").json()
    assert report["totals"]["sent"] == 15 and report["totals"]["delivered"] == 15
    assert {row["variant"] for row in report["variants"]} == {"A", "B"}
    assert sum(row["sent"] for row in report["variants"]) == 15
    assert report["over_time"][0]["sent"] == 15
    assert api.get(f"/api/v1/campaigns/{campaign_id}/report/?bucket=week").status_code == 400
    progress = api.get(f"/api/v1/campaigns/{campaign_id}/progress/").json()
    assert progress["percent"] == 100.0 and progress["states"] == {"sent": 15}
    ledger = api.get(f"/api/v1/campaigns/{campaign_id}/sends/?state=sent").json()
    assert len(ledger["results"]) == 15 and ledger["results"][0]["customer"].startswith("c")
    assert api.get(f"/api/v1/campaigns/{campaign_id}/runs/").json()["results"][0]["key"] == "once"


def test_preview_renders_for_a_customer(api, audience):
    customers, _ = audience
    response = api.post(
        "/api/v1/templates/preview/",
        {"subject": "Hi {{ customer.first_name }}", "html": HTML, "customer": customers[2].external_id},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["subject"] == f"Hi {customers[2].first_name}"
    assert customers[2].first_name in body["html"] and customers[2].first_name in body["text"]


def test_preview_errors_name_the_field_and_line(api, db):
    response = api.post(
        "/api/v1/templates/preview/", {"subject": "ok", "html": "<p>fine</p>\n<p>{% if %}</p>"}, format="json"
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors[0]["field"] == "html" and errors[0]["line"] == 2 and errors[0]["message"]
    unknown = api.post("/api/v1/templates/preview/", {"html": "x", "customer": "nobody"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "customer"
    empty = api.post("/api/v1/templates/preview/", {}, format="json")
    assert empty.status_code == 400 and "errors" in empty.json()
