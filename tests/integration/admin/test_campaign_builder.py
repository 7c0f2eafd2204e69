"""The campaign builder's change form through the real admin: steps, help, actions, saving."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.utils.html import escape

from access.models import AuditEntry
from access.roles import ensure_roles
from access.scopes import ROLE_ANALYST, ROLE_MARKETER
from campaigns.admin.forms import CAMPAIGN_HELP, VARIANT_HELP
from campaigns.models import Campaign, CampaignRun, CampaignStatus, MessageTemplate, Send, TrackingEvent
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db

STEPS = [
    "1 · Audience",
    "2 · Content &amp; A/B variants",
    "3 · Schedule &amp; timezone",
    "4 · Holdout",
    "5 · Send limits",
    "Advanced · Sender, links and conversions",
    "Advanced · Recommendations in the message",
    "History",
]


@pytest.fixture
def world():
    customers = scenario.make_customers(4)
    everyone = scenario.make_segment(customers, name="Everyone")
    last_two = scenario.make_segment(customers[2:], name="Last two")
    campaign = scenario.make_campaign(everyone, variants=2)
    return {"customers": customers, "everyone": everyone, "last_two": last_two, "campaign": campaign}


def _login(client, django_user_model, name: str, role: str):
    ensure_roles()
    user = django_user_model.objects.create_user(name, f"{name}@example.com", "pass-2026-xyz", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


@pytest.fixture
def marketer(client, django_user_model):
    return _login(client, django_user_model, "mara", ROLE_MARKETER)


@pytest.fixture
def analyst(client, django_user_model):
    return _login(client, django_user_model, "ana", ROLE_ANALYST)


def _page(client, campaign) -> str:
    response = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def _headings(page: str) -> list[str]:
    return [
        h.strip() for h in re.findall(r'<h2 id="[^"]*-heading" class="[^"]*">\s*(.*?)\s*</h2>', page, re.S)
    ]


def _transitions(page: str) -> dict[str, bool]:
    """verb -> shown (True) or hidden (False), from the status card's buttons."""
    found = re.findall(r'<a class="button transition[^>]*data-verb="(\w+)"([^>]*)>', page)
    return {verb: "hidden" not in rest for verb, rest in found}


def test_the_package_registers_every_campaign_screen():
    from campaigns.admin import CampaignAdmin

    registered = admin.site._registry
    assert isinstance(registered[Campaign], CampaignAdmin)
    assert {MessageTemplate, Send, CampaignRun, TrackingEvent} <= set(registered)


def test_add_form_is_the_numbered_steps_with_help(marketer, world):
    page = marketer.get("/admin/campaigns/campaign/add/").content.decode()
    headings = _headings(page)
    assert [h for h in headings if h in STEPS] == STEPS  # in this order
    assert "Experiment" in headings[headings.index("4 · Holdout") :]  # the experiment sits by the holdout

    # advanced sections and the history are closed <details>; the steps are open fieldsets
    def before(name: str) -> str:
        at = re.search(rf'class="(?:fieldset|inline)-heading">\s*{re.escape(name)}\s*</h2>', page).start()
        return page[at - 200 : at]

    for name in STEPS[5:]:
        assert "<details><summary>" in before(name) and "<details open" not in before(name)
    for name in STEPS[:5]:
        assert "<details>" not in before(name)
    # help beside the fields, from the builder's forms
    for text in (CAMPAIGN_HELP["control_percent"], CAMPAIGN_HELP["cap_messages"], VARIANT_HELP["weight"]):
        assert text in page or escape(text) in page
    # the live parts and the step navigation
    assert "data-audience-count-url" in page and 'href="#variants-heading"' in page
    assert "Save the draft to preview each variant" in page
    assert "data-progress-url" not in page and "builder-actions" not in page


def test_draft_offers_launch_and_cancel_and_a_live_preview(marketer, world):
    campaign = world["campaign"]
    page = _page(marketer, campaign)
    assert _transitions(page) == {"launch": True, "pause": False, "resume": False, "cancel": True}
    assert "data-progress-url" not in page  # nothing sent yet
    assert "ask for confirmation first" in page
    assert f'data-inline-preview="/admin/campaigns/campaign/{campaign.pk}/preview/render/"' in page
    first = world["customers"][0].external_id
    assert f'id="builder-preview-customer" list="builder-preview-customers" value="{first}"' in page
    assert "A 50 % · B 50 %" in page  # the saved weights' shares
    assert 'name="_continue"' in page


@pytest.mark.parametrize(
    ("status", "shown", "editable"),
    [
        (CampaignStatus.SENDING, {"pause", "cancel"}, False),
        (CampaignStatus.PAUSED, {"resume", "cancel"}, True),
        (CampaignStatus.SENT, set(), False),
    ],
)
def test_launched_campaign_shows_progress_and_the_transitions_of_its_status(
    marketer, world, status, shown, editable
):
    campaign = world["campaign"]
    Campaign.objects.filter(pk=campaign.pk).update(status=status)
    page = _page(marketer, campaign)
    assert {verb for verb, visible in _transitions(page).items() if visible} == shown
    assert f'data-progress-url="/admin/campaigns/campaign/{campaign.pk}/progress/?format=json"' in page
    # a paused campaign may still be edited; a sending or sent one is read-only: no inputs for the
    # campaign or its variants, no save buttons, no live preview (the full preview page instead)
    for part in ('name="name"', 'name="variants-0-subject"', 'name="_save"', "data-inline-preview"):
        assert (part in page) is editable, part
    assert ("preview them for a customer" in page) is not editable


def test_progress_json_tells_the_card_what_to_offer(marketer, world):
    campaign = world["campaign"]
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.PAUSED)
    data = marketer.get(f"/admin/campaigns/campaign/{campaign.pk}/progress/?format=json").json()
    assert data["status"] == "paused" and data["status_display"] == "Paused"
    assert data["offered"] == ["resume", "cancel"]


def test_cancel_asks_for_confirmation_then_cancels_and_audits(marketer, world):
    campaign = world["campaign"]
    url = f"/admin/campaigns/campaign/{campaign.pk}/transition/cancel/"
    confirm = marketer.get(url)
    assert confirm.status_code == 200 and "Yes, cancel" in confirm.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT  # asking changes nothing
    response = marketer.post(url, {"reason": "Wrong segment"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED and campaign.status_reason == "Wrong segment"
    assert AuditEntry.objects.filter(action="campaign.cancelled").count() == 1
    assert _transitions(_page(marketer, campaign)) == {
        "launch": False,
        "pause": False,
        "resume": False,
        "cancel": False,
    }


def test_analyst_sees_the_card_without_actions(analyst, world):
    page = _page(analyst, world["campaign"])
    assert _transitions(page) == {}
    assert "Test send" not in page and ">Report</a>" in page
    assert "data-inline-preview" not in page


def _form_data(response) -> dict:
    """What the browser would post back: the form's current values and every management form."""
    data = {}
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(value, list | tuple):
            data[name] = [str(v) for v in value]
        elif value is not None and not (isinstance(value, bool) and value is False):
            data[name] = str(value)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name in formset.management_form.fields:
            data[f"{formset.prefix}-{name}"] = formset.management_form[name].value()
        for sub in formset.forms:
            for name in sub.fields:
                value = sub[name].value()
                if value is not None and value is not False:
                    data[sub.add_prefix(name)] = str(value)
    return data


def test_builder_saves_audience_variants_schedule_holdout_and_limits(marketer, world):
    form = marketer.get("/admin/campaigns/campaign/add/")
    data = _form_data(form)
    data.update(
        {
            "name": "Autumn mugs",
            "channel": "email",
            "include_segments": [str(world["everyone"].pk)],
            "exclude_segments": [str(world["last_two"].pk)],
            "schedule_kind": "local_time",
            "local_send_date": "2030-10-01",
            "local_send_time": "09:30:00",
            "schedule_timezone": "Europe/London",
            "control_percent": "10",
            "cap_messages": "2",
            "cap_period_hours": "48",
            "quiet_hours_start": "21:00:00",
            "quiet_hours_end": "08:00:00",
            "variants-TOTAL_FORMS": "2",
            "variants-0-name": "A",
            "variants-0-weight": "2",
            "variants-0-subject": "Mugs for {{ customer.first_name }}",
            "variants-0-html": "<p>Hello</p>",
            "variants-1-name": "B",
            "variants-1-weight": "1",
            "variants-1-subject": "Autumn is here",
            "variants-1-html": "<p>Hi</p>",
            "_continue": "1",
        }
    )
    response = marketer.post("/admin/campaigns/campaign/add/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get(name="Autumn mugs")
    assert list(campaign.include_segments.all()) == [world["everyone"]]
    assert list(campaign.exclude_segments.all()) == [world["last_two"]]
    assert (campaign.schedule_kind, campaign.schedule_timezone) == ("local_time", "Europe/London")
    assert str(campaign.local_send_time) == "09:30:00" and float(campaign.control_percent) == 10
    assert (campaign.cap_messages, campaign.cap_period_hours) == (2, 48)
    assert sorted(campaign.variants.values_list("name", "weight")) == [("A", 2), ("B", 1)]
    page = _page(marketer, campaign)
    assert "A 60 % · B 30 %" in page  # shares of the 90 % left after the control group
    assert AuditEntry.objects.filter(action="campaign.created").exists()


def test_builder_answers_bad_input_with_field_errors(marketer, world):
    data = _form_data(marketer.get("/admin/campaigns/campaign/add/"))
    data.update(
        {
            "name": "Broken",
            "variants-TOTAL_FORMS": "1",
            "variants-0-name": "A",
            "variants-0-weight": "0",
            "control_percent": "150",
            "schedule_kind": "whenever",
        }
    )
    response = marketer.post("/admin/campaigns/campaign/add/", data)
    assert response.status_code == 200  # the form again, with the errors beside the fields
    form = response.context["adminform"].form
    assert {"control_percent", "schedule_kind"} <= set(form.errors)
    variant_errors = response.context["inline_admin_formsets"][0].formset.forms[0].errors
    assert "weight" in variant_errors
    assert not Campaign.objects.filter(name="Broken").exists()
