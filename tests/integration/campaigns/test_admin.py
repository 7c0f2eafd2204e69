"""The campaign builder in the admin: pages render, actions confirm before acting and are audited."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from access.models import AuditEntry
from campaigns.models import CampaignStatus, Send, SendState, TestSend
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, admin_user, settings):
    settings.SITE_URL = "https://testserver"
    client.force_login(admin_user)
    return client


@pytest.fixture
def campaign(db):
    customers = scenario.make_customers(6)
    scenario.store_recommendations(customers, scenario.make_products(6))
    return scenario.make_campaign(scenario.make_segment(customers), variants=2)


def test_change_page_offers_the_actions_of_its_status(staff, campaign):
    page = staff.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert page.status_code == 200
    # Every transition is on the card (the progress poll may reveal one); only the offered are shown.
    shown = dict(
        re.findall(rb'href="[^"]*/transition/(\w+)/" data-verb="\w+"[^>]*?( hidden)?>', page.content)
    )
    assert shown == {b"launch": b"", b"pause": b" hidden", b"resume": b" hidden", b"cancel": b""}
    assert staff.get("/admin/campaigns/campaign/").status_code == 200


def test_launch_asks_first_then_launches_and_audits(staff, campaign, django_capture_on_commit_callbacks):
    url = f"/admin/campaigns/campaign/{campaign.pk}/transition/launch/"
    confirm = staff.get(url)
    assert (
        confirm.status_code == 200
        and b"Yes, launch" in confirm.content
        and b"<strong>6</strong>" in confirm.content
    )
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT  # a GET changes nothing
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(url)
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT  # eager tasks in tests: written and sent inline
    assert Send.objects.filter(campaign=campaign, state=SendState.SENT).count() == 6
    entry = AuditEntry.objects.get(action="campaign.launched")
    assert entry.actor.username == "admin" and entry.target_id == str(campaign.pk)
    # A sent campaign cannot be edited or launched again.
    assert staff.post(url).status_code == 302
    assert AuditEntry.objects.filter(action="campaign.launched").count() == 1


def test_pause_takes_a_reason(staff, campaign):
    from django.utils import timezone

    campaign.schedule_kind = "at"
    campaign.send_at = timezone.now() + timezone.timedelta(days=1)
    campaign.save()
    staff.post(f"/admin/campaigns/campaign/{campaign.pk}/transition/launch/")
    staff.post(f"/admin/campaigns/campaign/{campaign.pk}/transition/pause/", {"reason": "waiting for legal"})
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED and campaign.status_reason == "waiting for legal"


def test_launch_problems_are_shown_not_raised(staff, db):
    empty = scenario.make_campaign(None, name="No audience")
    response = staff.post(f"/admin/campaigns/campaign/{empty.pk}/transition/launch/", follow=True)
    assert response.status_code == 200 and b"Choose at least one segment" in response.content
    empty.refresh_from_db()
    assert empty.status == CampaignStatus.DRAFT


def test_preview_page_and_its_sandboxed_frame(staff, campaign):
    variant = campaign.variants.get(name="B")
    customer = campaign.include_segments.get().memberships.first().customer
    page = staff.get(
        f"/admin/campaigns/campaign/{campaign.pk}/preview/?variant={variant.pk}&customer={customer.external_id}"
    )
    assert page.status_code == 200
    assert f"Hello {customer.first_name} (B)".encode() in page.content
    assert b"<iframe" in page.content and b"sandbox" in page.content
    frame = staff.get(
        f"/admin/campaigns/campaign/{campaign.pk}/preview/frame/?variant={variant.pk}&customer={customer.external_id}"
    )
    assert frame.status_code == 200 and b"Product" in frame.content
    assert "sandbox" in frame["Content-Security-Policy"]


def test_preview_shows_template_errors_with_lines(staff, campaign):
    campaign.variants.filter(name="A").update(html="<p>ok</p>\n{{ customer.frist_name }}")
    variant = campaign.variants.get(name="A")
    page = staff.get(f"/admin/campaigns/campaign/{campaign.pk}/preview/?variant={variant.pk}")
    assert page.status_code == 200 and b"line 2" in page.content


def test_test_send_from_the_admin(staff, campaign, django_capture_on_commit_callbacks):
    url = f"/admin/campaigns/campaign/{campaign.pk}/test-send/"
    assert staff.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            url, {"addresses": "qa@example.com\nlead@example.com", "variant": campaign.variants.first().pk}
        )
    assert response.status_code == 302
    assert TestSend.objects.get().state == TestSend.State.SENT
    assert sorted(m.to[0] for m in mail.outbox) == ["lead@example.com", "qa@example.com"]
    bad = staff.post(url, {"addresses": "not an address"}, follow=True)
    assert b"is not an email address" in bad.content


def test_progress_and_report_pages(staff, campaign, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(f"/admin/campaigns/campaign/{campaign.pk}/transition/launch/")
    progress = staff.get(f"/admin/campaigns/campaign/{campaign.pk}/progress/?format=json").json()
    assert progress["states"] == {"sent": 6} and progress["percent"] == 100.0
    assert staff.get(f"/admin/campaigns/campaign/{campaign.pk}/progress/").status_code == 200
    report = staff.get(f"/admin/campaigns/campaign/{campaign.pk}/report/?bucket=hour")
    assert report.status_code == 200 and b"Per variant" in report.content
    assert staff.get("/admin/campaigns/send/").status_code == 200
