"""Channel experiments where a marketer meets them: the builder's save, test sends, the report.

Through the real admin (Django's test client) and the API, on PostgreSQL; push goes to the real
local HTTP receiver of the campaign tests. Salts are fixed (dimensions.SALT).
"""

from __future__ import annotations

import csv
import io

import pytest

from campaigns.models import TestSend
from experiments.models import Experiment
from tests.integration.admin_forms import admin_form_data
from tests.integration.campaigns import scenario
from tests.integration.campaigns.conftest import push_receiver as push_receiver  # noqa: F401
from tests.integration.experiments import dimensions as d

pytestmark = pytest.mark.django_db

OPEN_RATE_ERROR = "Opens are not tracked for push"


def prefix_of(data: dict, name: str) -> str:
    index = {data[k]: k.split("-")[1] for k in data if k.startswith("variants-") and k.endswith("-name")}
    return f"variants-{index[name]}-"


def experiment_prefix(data: dict) -> str:
    return next(k.rsplit("metric", 1)[0] for k in data if k.endswith("-metric"))


def metric_errors(response) -> list[str]:
    for inline in response.context["inline_admin_formsets"]:
        if inline.formset.model is Experiment:
            return [str(e) for form in inline.formset.forms for e in form.errors.get("metric", [])]
    raise AssertionError("no experiment inline on the page")


# --------------------------------------------------------------------------------------------
# 1. The builder refuses push under an open-rate experiment in the same save


def test_one_save_moving_a_variant_to_push_under_open_rate_gets_a_field_error(client, admin_user):
    client.force_login(admin_user)
    campaign = d.experiment_campaign(scenario.make_customers(2), variants=[{}, {}], metric="open_rate")
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    data = admin_form_data(client.get(url))
    b = prefix_of(data, "B")

    data[b + "channel"] = "push"
    refused = client.post(url, data)
    assert refused.status_code == 200
    errors = metric_errors(refused)
    assert len(errors) == 1 and errors[0].startswith(OPEN_RATE_ERROR) and "Variant B" in errors[0]
    assert OPEN_RATE_ERROR in refused.content.decode()
    assert d.variant(campaign, "B").channel == ""  # nothing of the refused save was written

    # Both changed in one save: push for B and click rate for the experiment is fine.
    data[experiment_prefix(data) + "metric"] = "click_rate"
    saved = client.post(url, data)
    assert saved.status_code == 302, metric_errors(saved)
    assert d.variant(campaign, "B").channel == "push"
    assert Experiment.objects.get(campaign=campaign).metric == "click_rate"


def test_the_check_reads_this_saves_channels_not_the_saved_ones(client, admin_user):
    client.force_login(admin_user)
    campaign = d.experiment_campaign(scenario.make_customers(2), variants=[{}, {"channel": "push"}])
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    data = admin_form_data(client.get(url))
    b, e = prefix_of(data, "B"), experiment_prefix(data)

    # Open rate while B is saved as push, but B goes back to email in the same save: accepted.
    data.update({b + "channel": "email", e + "metric": "open_rate"})
    saved = client.post(url, data)
    assert saved.status_code == 302, metric_errors(saved)
    assert (d.variant(campaign, "B").channel, Experiment.objects.get(campaign=campaign).metric) == (
        "email",
        "open_rate",
    )

    # The campaign's own channel moved to push: variants without a channel of their own follow it.
    data = admin_form_data(client.get(url))
    data.update({"channel": "push", prefix_of(data, "B") + "channel": ""})
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert metric_errors(refused) and "Variants A, B" in metric_errors(refused)[0]
    campaign.refresh_from_db()
    assert campaign.channel == "email"

    # A variant deleted in the same save is not checked.
    data = admin_form_data(client.get(url))
    b = prefix_of(data, "B")
    data.update({b + "channel": "push", b + "DELETE": "on"})
    saved = client.post(url, data)
    assert saved.status_code == 302, metric_errors(saved)
    assert list(campaign.variants.values_list("name", flat=True)) == ["A"]


def test_a_new_campaign_with_a_push_variant_and_an_open_rate_experiment_is_refused(client, admin_user):
    from campaigns.models import Campaign

    client.force_login(admin_user)
    url = "/admin/campaigns/campaign/add/"
    data = admin_form_data(client.get(url))
    data.update(
        {
            "name": "Channel test",
            "variants-TOTAL_FORMS": "2",
            "variants-0-subject": "Hi",
            "variants-1-name": "B",
            "variants-1-weight": "1",
            "variants-1-channel": "push",
            "experiment-TOTAL_FORMS": "1",
            "experiment-0-metric": "open_rate",
            "experiment-0-relative": "on",
            "experiment-0-method": "frequentist",
            "experiment-0-alpha": "0.05",
            "experiment-0-correction": "none",
            "experiment-0-planned_sample_size": "5000",
            "experiment-0-mode": "ab",
            "experiment-0-sample_percent": "20",
            "experiment-0-wait_minutes": "240",
            "experiment-0-min_sample_per_arm": "100",
            "experiment-0-decision_rule": "significance",
            "experiment-0-chance_threshold": "0.95",
            "experiment-0-bandit_floor": "0.05",
        }
    )
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert metric_errors(refused) and "Variant B goes out by push" in metric_errors(refused)[0]
    assert not Campaign.objects.filter(name="Channel test").exists()

    data["experiment-0-metric"] = "click_rate"
    saved = client.post(url, data)
    assert saved.status_code == 302, metric_errors(saved)
    campaign = Campaign.objects.get(name="Channel test")
    assert d.variant(campaign, "B").channel == "push" and campaign.experiment.metric == "click_rate"


# --------------------------------------------------------------------------------------------
# 2. Test sends of a push variant go to test customers' push subscriptions


@pytest.fixture
def push_world(send_settings, push_receiver):
    """Variant A by email, B by push; c0 has two devices, c1 one, c2 a device but no push consent."""
    from customers.models import PushSubscription

    customers = scenario.make_customers(3)
    scenario.grant(customers[:2], channel="push")
    d.subscribe_push(customers, push_receiver)
    PushSubscription.objects.create(
        customer=customers[0],
        kind=PushSubscription.Kind.HTTP,
        endpoint=push_receiver.url("/laptop"),
        token="laptop-0",
    )
    campaign = d.experiment_campaign(customers, variants=[{}, {"channel": "push"}])
    return {"customers": customers, "campaign": campaign, "receiver": push_receiver}


def test_a_push_variants_test_send_over_the_api(api, push_world, django_capture_on_commit_callbacks):
    from campaigns.models import Send
    from customers.models import PushSubscription

    c0, c1, c2 = push_world["customers"]
    campaign, receiver = push_world["campaign"], push_world["receiver"]
    url = f"/api/v1/campaigns/{campaign.pk}/test-send/"

    def post(body):
        with django_capture_on_commit_callbacks(execute=True):
            return api.post(url, body, format="json")

    # What a push test needs, said plainly, and nothing sent for a refused request.
    needs = post({"variant": "B"})
    assert needs.status_code == 400
    assert "push subscriptions of test customers" in needs.json()["test_customers"][0]
    assert (
        "not email addresses"
        in post({"variant": "B", "addresses": ["qa@example.com"]}).json()["addresses"][0]
    )
    assert post({"variant": "B", "test_customers": [c2.external_id]}).json()["test_customers"] == [
        f"{c2.external_id}: no push consent on record."
    ]
    assert (
        "No customer with the external id"
        in (post({"variant": "B", "test_customers": ["nobody-here"]}).json()["test_customers"][0])
    )
    assert (
        "are for push variants"
        in (post({"variant": "A", "test_customers": [c0.external_id]}).json()["test_customers"][0])
    )
    assert receiver.requests == [] and TestSend.objects.count() == 0

    # Every subscription of each test customer gets it, filled with the chosen customer's data.
    response = post(
        {"variant": "B", "test_customers": [c0.external_id, c1.external_id], "customer": c1.external_id}
    )
    assert response.status_code == 202, response.content
    devices = PushSubscription.objects.filter(customer__in=[c0, c1])
    assert sorted(response.json()["addresses"]) == sorted(f"push:{s.pk}" for s in devices)
    test_send = TestSend.objects.get()
    assert test_send.state == TestSend.State.SENT, test_send.result
    assert set(test_send.result["addresses"].values()) == {"sent"}
    assert sorted(r.path for r in receiver.requests) == ["/laptop", "/push", "/push"]
    tokens = {r.json()["to"] for r in receiver.requests}
    assert tokens == {s.token for s in devices}
    for request in receiver.requests:
        payload = request.json()
        assert payload["title"] == f"[TEST] Hi {c1.first_name}"
        assert payload["url"].startswith("https://shop.example.com/push")  # untracked
        assert "utm_medium=push" in payload["url"]
        assert request.headers.get("X-Reachly-Signature", "").startswith("t=")
    assert Send.objects.count() == 0  # nothing in the ledger

    # A device the provider says is gone: the test fails for it and the subscription is retired.
    receiver.requests.clear()
    receiver.statuses["/laptop"] = 410
    post({"variant": "B", "test_customers": [c0.external_id]})
    failed = TestSend.objects.latest("pk")
    assert failed.state == TestSend.State.FAILED
    laptop = PushSubscription.objects.get(endpoint__endswith="/laptop")
    assert failed.result["addresses"][f"push:{laptop.pk}"].startswith("failed")
    assert not PushSubscription.objects.get(pk=laptop.pk).active
    assert len(receiver.requests) == 2

    # The email variant's test send still goes to addresses.
    assert post({"variant": "A", "addresses": ["qa@example.com"]}).status_code == 202


def test_a_push_variants_test_send_from_the_admin(
    client, admin_user, push_world, django_capture_on_commit_callbacks
):
    c0 = push_world["customers"][0]
    campaign, receiver = push_world["campaign"], push_world["receiver"]
    client.force_login(admin_user)
    url = f"/admin/campaigns/campaign/{campaign.pk}/test-send/"
    page = client.get(url).content.decode()
    assert "B (push)" in page and 'name="test_customers"' in page
    b = d.variant(campaign, "B")

    needs = client.post(url, {"variant": b.pk, "addresses": ""}, follow=True).content.decode()
    assert "push subscriptions of test customers" in needs and receiver.requests == []

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"variant": b.pk, "test_customers": f"{c0.external_id}\n"})
    assert response.status_code == 302
    assert TestSend.objects.get().state == TestSend.State.SENT
    assert sorted(r.path for r in receiver.requests) == ["/laptop", "/push"]
    assert all(r.json()["title"] == f"[TEST] Hi {c0.first_name}" for r in receiver.requests)
    assert "push:" in client.get(url).content.decode()


# --------------------------------------------------------------------------------------------
# 3. The campaign report, broken down by channel


def _sent_with_clicks(campaign, clicks: dict[str, int]):
    """Launch, write the ledger, mark the variant rows sent and give the first n of each arm a click."""
    from django.utils import timezone

    from campaigns.models import Arm, Send, SendState, TrackingEvent, TrackingKind
    from campaigns.services.launch import launch_campaign, write_run_ledger

    campaign = launch_campaign(campaign=campaign)
    write_run_ledger(run_id=campaign.runs.get().pk)
    now = timezone.now()
    Send.objects.filter(campaign=campaign, arm=Arm.VARIANT, state=SendState.QUEUED).update(
        state=SendState.SENT, sent_at=now
    )
    events = []
    for name, n in clicks.items():
        sent = Send.objects.filter(campaign=campaign, variant__name=name, state=SendState.SENT).order_by("pk")
        for send in sent[:n]:
            events.append(
                TrackingEvent(
                    send=send,
                    campaign=campaign,
                    variant_id=send.variant_id,
                    customer_id=send.customer_id,
                    kind=TrackingKind.CLICK,
                    occurred_at=now,
                )
            )
    TrackingEvent.objects.bulk_create(events)
    return campaign


def test_the_report_gives_each_variants_channel_and_a_total_per_channel(
    api, client, admin_user, send_settings, push_receiver
):
    customers = scenario.make_customers(60)
    scenario.grant(customers, channel="push")
    d.subscribe_push(customers, push_receiver)
    campaign = d.experiment_campaign(customers, variants=[{}, {"channel": "push"}, {}], control_percent=10)
    campaign = _sent_with_clicks(campaign, {"A": 3, "B": 5, "C": 1})

    report = api.get(f"/api/v1/campaigns/{campaign.pk}/report/").json()
    rows = {row["variant"]: row for row in report["variants"]}
    assert {name: row["channel"] for name, row in rows.items()} == {
        "A": "email",
        "B": "push",
        "C": "email",
        "held out": None,
    }
    channels = {row["channel"]: row for row in report["channels"]}
    assert list(channels) == ["email", "push"]
    for field in ("audience", "sent", "delivered", "clicks", "suppressed"):
        assert channels["email"][field] == rows["A"][field] + rows["C"][field], field
        assert channels["push"][field] == rows["B"][field], field
        # The control group went out on no channel: in the campaign's total only.
        assert (
            report["totals"][field]
            == channels["email"][field] + channels["push"][field] + rows["held out"][field]
        ), field
    assert (channels["email"]["clicks"], channels["push"]["clicks"]) == (4, 5)
    assert channels["push"]["click_rate"] == round(5 / channels["push"]["delivered"], 6)
    assert channels["email"]["click_rate"] == round(4 / channels["email"]["delivered"], 6)
    # Push opens are not tracked: no open rate for push rows (not a false 0 %).
    assert channels["push"]["open_rate"] is None and rows["B"]["open_rate"] is None
    assert channels["email"]["open_rate"] == 0.0 and rows["A"]["open_rate"] == 0.0
    assert rows["held out"]["audience"] > 0 and rows["held out"]["sent"] == 0

    # The admin page and its CSV export say the same.
    client.force_login(admin_user)
    url = f"/admin/campaigns/campaign/{campaign.pk}/report/"
    page = client.get(url).content.decode()
    assert "<th>Channel</th>" in page
    assert 'data-channel="push"><th>Total push</th>' in page
    assert 'data-channel="email"><th>Total email</th>' in page
    exported = list(csv.DictReader(io.StringIO(client.get(url + "?format=csv").content.decode())))
    by_key = {(row["variant"], row["channel"]): row for row in exported}
    assert list(by_key) == [
        ("A", "email"),
        ("B", "push"),
        ("C", "email"),
        ("held out", ""),
        ("total", "email"),
        ("total", "push"),
        ("total", ""),
    ]
    assert int(by_key[("total", "push")]["clicks"]) == 5
    assert int(by_key[("total", "email")]["sent"]) == channels["email"]["sent"]


def test_a_report_on_one_channel_keeps_its_shape(api, client, admin_user, send_settings):
    customers = scenario.make_customers(20)
    campaign = _sent_with_clicks(d.experiment_campaign(customers, variants=[{}, {}]), {"A": 2})
    report = api.get(f"/api/v1/campaigns/{campaign.pk}/report/").json()
    assert report["channels"] == []
    assert {row["channel"] for row in report["variants"]} == {"email"}
    client.force_login(admin_user)
    url = f"/admin/campaigns/campaign/{campaign.pk}/report/"
    assert "<th>Channel</th>" not in client.get(url).content.decode()
    header = client.get(url + "?format=csv").content.decode().splitlines()[0]
    assert header.startswith("variant,audience,")
