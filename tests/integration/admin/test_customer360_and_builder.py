"""Customer 360 panels, the builder's JSON endpoints and the roles, through the real admin."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from access.models import AuditEntry
from access.roles import ensure_roles
from access.scopes import ROLE_ANALYST, ROLE_MARKETER
from campaigns.models import CampaignStatus, Send, TrackingEvent
from customers.customer360 import customer_360
from loyalty.models import Membership
from segments.models import CustomerFeatures
from tests.factories.customers import EventFactory, make_order
from tests.factories.loyalty import LoyaltyProgramFactory, TierFactory
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(settings):
    settings.SITE_URL = "https://testserver"
    customers = scenario.make_customers(6)
    scenario.store_recommendations(customers, scenario.make_products(6))
    everyone = scenario.make_segment(customers, name="Everyone")
    first_two = scenario.make_segment(customers[:2], name="First two")
    campaign = scenario.make_campaign(everyone, variants=2)
    return {"customers": customers, "everyone": everyone, "first_two": first_two, "campaign": campaign}


def _user(django_user_model, name: str, role: str | None):
    ensure_roles()
    user = django_user_model.objects.create_user(name, f"{name}@example.com", "pass-2026-xyz", is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def marketer(client, django_user_model):
    client.force_login(_user(django_user_model, "mara", ROLE_MARKETER))
    return client


@pytest.fixture
def analyst(client, django_user_model):
    client.force_login(_user(django_user_model, "ana", ROLE_ANALYST))
    return client


# --- builder endpoints -------------------------------------------------------------------------


def test_live_audience_count(marketer, world):
    url = "/admin/campaigns/campaign/audience-count/"
    everyone, first_two = world["everyone"], world["first_two"]
    assert marketer.get(url, {"include": [everyone.pk]}).json()["count"] == 6
    data = marketer.get(url, {"include": [everyone.pk], "exclude": [first_two.pk], "channel": "push"}).json()
    assert data["count"] == 4 and data["reachable"] == 0  # consent is for email only
    assert marketer.get(url, {"include": [everyone.pk], "channel": "email"}).json()["reachable"] == 6
    assert marketer.get(url).json()["count"] == 0
    bad = marketer.get(url, {"include": ["x"], "channel": "fax"})
    assert bad.status_code == 400 and {e["field"] for e in bad.json()["errors"]} == {"include", "channel"}


def test_preview_json_renders_unsaved_parts_for_a_customer(marketer, world):
    campaign, customer = world["campaign"], world["customers"][1]
    url = f"/admin/campaigns/campaign/{campaign.pk}/preview/render/"
    ok = marketer.post(
        url,
        {
            "subject": "Hi {{ customer.first_name }}",
            "html": "<p>{{ recommendations[0].name }}</p>",
            "customer": "c1",
        },
    )
    assert ok.status_code == 200
    rendered = ok.json()["rendered"]
    assert rendered["subject"] == f"Hi {customer.first_name}" and "Product" in rendered["html"]
    broken = marketer.post(url, {"subject": "x", "html": "<p>\n{% if %}</p>"})
    assert broken.status_code == 400 and broken.json()["errors"][0]["line"] == 2
    unknown = marketer.post(url, {"subject": "x", "customer": "nobody"})
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "customer"
    assert marketer.get(url).status_code == 405
    # nothing was saved by previewing
    assert campaign.variants.get(name="A").subject == "Hello {{ customer.first_name }}"


def test_editor_saves_a_variant_and_audits(marketer, world):
    campaign = world["campaign"]
    variant = campaign.variants.get(name="A")
    url = f"/admin/campaigns/campaign/{campaign.pk}/preview/"
    response = marketer.post(url, {"variant": variant.pk, "subject": "New {{ customer.first_name }}"})
    assert response.status_code == 302
    variant.refresh_from_db()
    assert variant.subject == "New {{ customer.first_name }}"
    assert AuditEntry.objects.get(action="campaign.variant_changed").details["fields"] == ["subject"]


def test_change_page_has_live_parts(marketer, world):
    page = marketer.get(f"/admin/campaigns/campaign/{world['campaign'].pk}/change/").content.decode()
    assert "data-audience-count-url" in page and 'name="include_segments"' in page
    assert "reachly/builder.js" in page


# --- roles -------------------------------------------------------------------------------------


def test_analyst_reads_but_cannot_change_or_launch(analyst, world):
    campaign = world["campaign"]
    assert analyst.get("/admin/").status_code == 200
    assert analyst.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").status_code == 200
    assert analyst.get(f"/admin/campaigns/campaign/{campaign.pk}/report/").status_code == 200
    csv_report = analyst.get(f"/admin/campaigns/campaign/{campaign.pk}/report/?format=csv")
    assert csv_report.status_code == 200 and csv_report.content.startswith(b"variant,")
    assert analyst.post(f"/admin/campaigns/campaign/{campaign.pk}/transition/launch/").status_code == 403
    assert analyst.get(f"/admin/campaigns/campaign/{campaign.pk}/test-send/").status_code == 403
    variant = campaign.variants.get(name="A")
    assert (
        analyst.post(
            f"/admin/campaigns/campaign/{campaign.pk}/preview/", {"variant": variant.pk, "subject": "x"}
        ).status_code
        == 403
    )
    response = analyst.post(f"/admin/campaigns/campaign/{campaign.pk}/change/", {"name": "Hacked"})
    assert response.status_code == 403
    assert analyst.get("/admin/campaigns/campaign/add/").status_code == 403
    assert analyst.get("/admin/auth/user/").status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT and campaign.name == "Spring sale"
    # exports: CSV of the audit log through the admin action
    from access.services import record_audit

    entry = record_audit(actor=None, action="campaign.paused", target=campaign)
    export = analyst.post(
        "/admin/access/auditentry/", {"action": "export_as_csv", "_selected_action": [entry.pk]}
    )
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    lines = export.content.decode().splitlines()
    assert lines[0].startswith("id,actor,api_key_name,action") and "campaign.paused" in lines[1]
    assert AuditEntry.objects.filter(action="export.csv").exists()  # the export itself is audited


def test_marketer_launches_but_cannot_manage_users_or_keys(
    marketer, world, django_capture_on_commit_callbacks
):
    campaign = world["campaign"]
    assert marketer.get("/admin/auth/user/").status_code == 403
    assert marketer.get("/admin/auth/user/add/").status_code == 403
    assert marketer.get("/admin/access/apikey/").status_code == 403
    assert marketer.get("/admin/access/apikey/add/").status_code == 403
    assert marketer.get("/admin/auth/group/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = marketer.post(f"/admin/campaigns/campaign/{campaign.pk}/transition/launch/")
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT
    entry = AuditEntry.objects.get(action="campaign.launched")
    assert entry.actor.username == "mara"


def test_audit_log_is_read_only_and_filterable(client, admin_user, world):
    from access.services import record_audit

    record_audit(actor=admin_user, action="campaign.paused", target=world["campaign"])
    record_audit(actor=None, action="api_key.created")
    client.force_login(admin_user)
    page = client.get("/admin/access/auditentry/?actor=" + str(admin_user.pk))
    assert (
        page.status_code == 200
        and b"1 result" in page.content
        and b'<td class="field-action">campaign.paused' in page.content
    )
    system = client.get("/admin/access/auditentry/?actor=system")
    assert b'<td class="field-action">api_key.created' in system.content
    assert b'<td class="field-action">campaign.paused' not in system.content
    entry = AuditEntry.objects.get(action="campaign.paused")
    assert client.post(f"/admin/access/auditentry/{entry.pk}/change/", {"action": "x"}).status_code == 403
    assert client.get(f"/admin/access/auditentry/{entry.pk}/delete/").status_code == 403


# --- customer 360 ------------------------------------------------------------------------------


def test_customer_360_panels(
    client, admin_user, world, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    customer = world["customers"][0]
    for i in range(12):
        make_order(customer=customer, placed_at=timezone.now() - dt.timedelta(days=i))
    EventFactory(customer=customer, type="view")
    program = LoyaltyProgramFactory()
    tier = TierFactory(program=program, name="Gold", threshold=100)
    Membership.objects.create(
        customer=customer,
        program=program,
        tier=tier,
        balance=420,
        lifetime_points=900,
        joined_at=timezone.now(),
    )
    CustomerFeatures.objects.create(
        customer=customer,
        frequency=12,
        monetary=300,
        rfm_r=5,
        rfm_f=4,
        rfm_m=3,
        rfm_group="Champions",
        churn_probability=0.12,
        p_alive=0.9,
        predicted_clv=123.45,
    )
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/campaigns/campaign/{world['campaign'].pk}/transition/launch/")
    send = Send.objects.get(customer=customer)
    for kind, machine in (("open", False), ("open", True), ("click", False)):
        TrackingEvent.objects.create(
            send=send,
            campaign=send.campaign,
            variant=send.variant,
            customer=customer,
            kind=kind,
            machine=machine,
            occurred_at=timezone.now(),
        )

    with django_assert_max_num_queries(20):
        panels = customer_360(customer=customer)
    assert panels["order_count"] == 12 and len(panels["orders"]) == 10  # limited
    assert [m.segment.name for m in panels["segments"]] == ["Everyone", "First two"]
    assert panels["messages"][0]["opens"] == 1 and panels["messages"][0]["machine_opens"] == 1
    assert panels["messages"][0]["clicks"] == 1
    assert panels["recommendations"][0]["explanation"] == "Because you liked mugs"
    assert panels["features"].rfm_group == "Champions"

    page = client.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()
    assert 'data-panel="order-count">12<' in page
    assert 'data-panel="points">420 points<' in page and "tier Gold" in page
    assert 'data-panel="rfm">543<' in page and "Champions" in page
    assert 'data-panel="churn">12 %<' in page and "123.45" in page
    assert "Because you liked mugs" in page and "Spring sale" in page


def test_users_list_shows_roles_to_admins(client, admin_user, django_user_model):
    _user(django_user_model, "mara", ROLE_MARKETER)
    client.force_login(admin_user)
    page = client.get("/admin/auth/user/?role=Marketer")
    assert page.status_code == 200
    html = page.content.decode()
    assert "mara" in html and '<td class="field-roles">Marketer</td>' in html
    assert '<td class="field-roles">superuser</td>' not in html  # filtered out
