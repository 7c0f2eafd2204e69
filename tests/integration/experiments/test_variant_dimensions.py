"""Variants that differ by send time, recommendation algorithm and channel, on PostgreSQL.

The ledger writer and the sender run in this process here (SMTP to a real aiosmtpd sink, push to a
real local HTTP receiver); test_variant_dimensions_worker.py runs the same flow on a Celery worker.
Salts are fixed (dimensions.SALT), so the split is the same on every run.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from campaigns.models import Arm, CampaignRun, Send, SendState, TrackedLink
from campaigns.services.launch import LaunchError, launch_campaign, launch_problems, write_run_ledger
from campaigns.services.previews import preview_variant
from campaigns.services.sending import send_campaign_chunks
from customers.models import ConsentAction
from customers.services import record_consent
from experiments.models import Experiment
from tests.integration.admin_forms import admin_form_data
from tests.integration.campaigns import scenario
from tests.integration.campaigns.conftest import push_receiver as push_receiver  # noqa: F401
from tests.integration.experiments import dimensions as d

pytestmark = pytest.mark.django_db

LONDON, NEW_YORK = "Europe/London", "America/New_York"


def launch_and_write(campaign):
    campaign = launch_campaign(campaign=campaign)
    write_run_ledger(run_id=campaign.runs.get().pk)
    return campaign


def rows(campaign, **filters):
    return list(
        Send.objects.filter(campaign=campaign, **filters).select_related("customer", "variant", "run")
    )


# --------------------------------------------------------------------------------------------
# Send time


def test_each_variant_waits_for_its_own_local_time_or_delay(send_settings, smtp_sink, client, admin_user):
    customers = scenario.make_customers(30, timezone_name=LONDON) + scenario.make_customers(
        30, prefix="ny", timezone_name=NEW_YORK
    )
    campaign = launch_and_write(
        d.experiment_campaign(
            customers,
            variants=[
                {"send_local_time": time(9, 0)},
                {"send_local_time": time(18, 0)},
                {"send_delay_minutes": 90},
            ],
        )
    )
    run = campaign.runs.get()
    ledger = rows(campaign)
    # The split hashes (salt, customer id): fixed salt, but ids differ between runs, so counts are read.
    counts = Counter(r.variant.name for r in ledger)
    assert set(counts) == {"A", "B", "C"} and sum(counts.values()) == 60
    for row in ledger:
        assert row.arm == Arm.VARIANT and row.channel == "email"
        if row.variant.name == "C":
            assert row.not_before == run.scheduled_for + timedelta(minutes=90)
        else:
            local = row.not_before.astimezone(ZoneInfo(row.customer.timezone))
            assert (local.hour, local.minute) == ((9, 0) if row.variant.name == "A" else (18, 0))
            assert run.scheduled_for <= row.not_before < run.scheduled_for + timedelta(days=1)
        assert row.state == SendState.DEFERRED and row.reason == "waiting for its send time"

    # Nothing is due yet: a sender finds nothing to claim.
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert smtp_sink.count() == 0

    # B's time comes (the clock is moved back in the ledger, not slept on).
    Send.objects.filter(campaign=campaign, variant__name="B").update(
        not_before=timezone.now() - timedelta(seconds=1)
    )
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert smtp_sink.count() == counts["B"]
    assert all(m.subject.endswith("(B)") for m in smtp_sink.messages)
    assert Counter(Send.objects.filter(campaign=campaign).values_list("variant__name", "state")) == {
        ("A", SendState.DEFERRED): counts["A"],
        ("B", SendState.SENT): counts["B"],
        ("C", SendState.DEFERRED): counts["C"],
    }

    # While A and C wait, the split of the recipients so far says nothing: no SRM alarm.
    from experiments.services.results import experiment_results

    results = experiment_results(experiment=Experiment.objects.get(campaign=campaign), with_series=False)
    assert results["srm_note"].startswith("Not checked yet")
    assert [(v["name"], v["send_local_time"], v["send_delay_minutes"]) for v in results["variants"]] == [
        ("A", "09:00:00", None),
        ("B", "18:00:00", None),
        ("C", None, 90),
    ]
    client.force_login(admin_user)
    page = client.get(f"/admin/experiments/experiment/{results['experiment']}/results/").content.decode()
    assert "How each variant goes out" in page and "Not checked yet" in page
    assert "09:00 in each customer's timezone" in page and "90 min after the campaign's time" in page


def test_in_each_customers_timezone_the_variants_keep_the_date_and_the_run_starts_with_the_earliest(
    send_settings,
):
    customers = scenario.make_customers(20, timezone_name=LONDON)
    day = timezone.now().date() + timedelta(days=3)
    campaign = d.experiment_campaign(
        customers,
        variants=[{}, {"send_local_time": time(7, 30)}],
        schedule_kind="local_time",
        local_send_date=day,
        local_send_time=time(20, 0),
    )
    campaign = launch_campaign(campaign=campaign)
    run = campaign.runs.get()
    # The run is opened when 07:30 on that day first arrives anywhere (the campaign's 20:00 is later).
    assert run.scheduled_for.astimezone(ZoneInfo("Pacific/Kiritimati")).time() == time(7, 30)
    CampaignRun.objects.filter(pk=run.pk).update(scheduled_for=timezone.now() - timedelta(minutes=1))
    write_run_ledger(run_id=run.pk)
    for row in rows(campaign):
        local = row.not_before.astimezone(ZoneInfo(LONDON))
        assert local.date() == day
        assert local.time() == (time(20, 0) if row.variant.name == "A" else time(7, 30))


def test_a_send_time_winner_goes_to_the_rest_at_its_time(send_settings):
    from experiments.services.decision import decide_experiment

    customers = scenario.make_customers(200, timezone_name=NEW_YORK)
    campaign = d.experiment_campaign(customers, variants=[{}, {"send_local_time": time(18, 0)}])
    Experiment.objects.filter(campaign=campaign).update(mode="test_then_send", sample_percent=20)
    campaign = launch_and_write(campaign)
    waiting = Send.objects.filter(campaign=campaign, arm=Arm.ROLLOUT)
    sample = Send.objects.filter(campaign=campaign, arm=Arm.VARIANT).count()
    assert sample + waiting.count() == 200 and 100 < waiting.count() < 200
    assert set(waiting.values_list("state", "not_before")) == {(SendState.DEFERRED, None)}
    Send.objects.filter(campaign=campaign, arm=Arm.VARIANT).update(
        state=SendState.SENT, sent_at=timezone.now() - timedelta(hours=5)
    )
    experiment = Experiment.objects.get(campaign=campaign)
    # Nothing wins on no data, so the default is kept; now pretend B won to see its time applied.
    Experiment.objects.filter(pk=experiment.pk).update(default_variant=d.variant(campaign, "B"))
    assert decide_experiment(experiment_id=experiment.pk, force=True)
    experiment.refresh_from_db()
    assert experiment.winner.name == "B"
    for row in rows(campaign, arm=Arm.ROLLOUT):
        local = row.not_before.astimezone(ZoneInfo(NEW_YORK))
        assert (row.variant.name, local.time(), row.state) == ("B", time(18, 0), SendState.DEFERRED)
        assert row.not_before > timezone.now()


# --------------------------------------------------------------------------------------------
# Recommendation algorithm


def test_each_variants_messages_carry_its_recommenders_products(send_settings, smtp_sink):
    customers = scenario.make_customers(40)
    knn = d.recommender("item-knn", customers, d.products("knn", 4), default=True)
    ease = d.recommender("ease", customers, d.products("ease", 4))
    campaign = launch_and_write(
        d.experiment_campaign(customers, variants=[{"recommender": knn}, {"recommender": ease}])
    )
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=60)
    assert smtp_sink.count() == 40
    seen = Counter()
    for message in smtp_sink.messages:
        html = message.parsed().get_body(("html",)).get_content()
        names = set(re.findall(r"(?:knn|ease) product \d", html))
        group = "B" if message.subject.endswith("(B)") else "A"
        expected = "ease" if group == "B" else "knn"
        assert names == {f"{expected} product {i}" for i in range(4)}, (group, names)
        seen[group] += 1
    assert seen == Counter(Send.objects.filter(campaign=campaign).values_list("variant__name", flat=True))


def test_the_preview_of_a_variant_uses_its_recommender(send_settings):
    customers = scenario.make_customers(2)
    d.recommender("item-knn", customers, d.products("knn", 4), default=True)
    ease = d.recommender("ease", customers, d.products("ease", 4))
    campaign = d.experiment_campaign(customers, variants=[{}, {"recommender": ease}])
    rendered = preview_variant(variant=d.variant(campaign, "B"), customer=customers[0])
    assert "ease product 0" in rendered["html"] and "knn product" not in rendered["html"]
    rendered = preview_variant(variant=d.variant(campaign, "A"), customer=customers[0])
    assert "knn product 0" in rendered["html"] and "ease product" not in rendered["html"]


def test_a_recommender_without_an_active_model_stops_the_launch(send_settings):
    from recommender.models import RecommenderConfig

    customers = scenario.make_customers(3)
    untrained = RecommenderConfig.objects.create(name="untrained")
    campaign = d.experiment_campaign(customers, variants=[{}, {"recommender": untrained}])
    assert launch_problems(campaign)["variants"] == [
        "Variant B: the recommender untrained has no active model yet; train it or choose another."
    ]
    with pytest.raises(LaunchError):
        launch_campaign(campaign=campaign)


# --------------------------------------------------------------------------------------------
# Channel


def test_email_and_push_variants_each_go_out_on_their_channel(send_settings, smtp_sink, push_receiver):
    both = scenario.make_customers(40)
    scenario.grant(both, channel="push")
    d.subscribe_push(both, push_receiver)
    email_only = scenario.make_customers(6, prefix="mail")
    no_device = scenario.make_customers(4, prefix="nodev")
    scenario.grant(no_device, channel="push")
    campaign = launch_and_write(
        d.experiment_campaign(both + email_only + no_device, variants=[{}, {"channel": "push"}])
    )
    ledger = rows(campaign)
    by_variant = Counter((r.variant.name, r.channel) for r in ledger)
    assert set(by_variant) == {("A", "email"), ("B", "push")} and sum(by_variant.values()) == 50
    # Only customers reachable on both channels are compared; the others are recorded, not skipped.
    left_out = {r.customer_id: r.reason for r in ledger if r.state == SendState.SUPPRESSED}
    assert set(left_out) == {c.pk for c in email_only + no_device}
    mixed = "not reachable on every channel of the experiment"
    for row in ledger:
        if row.customer_id not in left_out:
            continue
        push_problem = (
            "no active push subscription" if row.customer in no_device else "no push consent on record"
        )
        # Drawn for push: refused on its own channel; drawn for email: refused for the comparison.
        expected = push_problem if row.variant.name == "B" else f"{mixed} ({push_problem})"
        assert row.reason == expected, (row.variant.name, row.reason)

    # Push consent withdrawn after the ledger was written: checked again at send time, per channel.
    withdrawn = next(r for r in ledger if r.variant.name == "B" and r.state == SendState.QUEUED)
    record_consent(customer=withdrawn.customer, channel="push", action=ConsentAction.WITHDRAWN, source="app")
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=60)

    outcome = {r.pk: r for r in rows(campaign)}
    assert outcome[withdrawn.pk].state == SendState.SUPPRESSED
    assert outcome[withdrawn.pk].reason == "push consent withdrawn"
    sent = Counter((r.variant.name, r.channel) for r in outcome.values() if r.state == SendState.SENT)
    a_sent = sum(1 for r in ledger if r.variant.name == "A" and r.state == SendState.QUEUED)
    b_sent = sum(1 for r in ledger if r.variant.name == "B" and r.state == SendState.QUEUED) - 1
    assert sent == {("A", "email"): a_sent, ("B", "push"): b_sent}
    assert smtp_sink.count() == a_sent and len(push_receiver.requests) == b_sent
    payload = push_receiver.requests[0].json()
    assert payload["url"].startswith("https://testserver/t/p/")
    # Links are tagged with the medium each variant went out on.
    links = dict(TrackedLink.objects.filter(variant__campaign=campaign).values_list("url", "variant__name"))
    assert {name for url, name in links.items() if "utm_medium=push" in url} == {"B"}
    assert {name for url, name in links.items() if "utm_medium=email" in url} == {"A"}


def test_open_rate_cannot_compare_a_push_variant(api, send_settings):
    customers = scenario.make_customers(3)
    campaign = d.experiment_campaign(customers, variants=[{}, {"channel": "push"}])
    experiment = Experiment.objects.get(campaign=campaign)

    response = api.patch(f"/api/v1/experiments/{experiment.pk}/", {"metric": "open_rate"}, format="json")
    assert response.status_code == 400
    assert response.json()["metric"] == [
        "Opens are not tracked for push, and Variant B goes out by push: "
        "choose click rate, conversion rate or revenue per recipient."
    ]
    assert (
        api.patch(
            f"/api/v1/experiments/{experiment.pk}/", {"metric": "click_rate"}, format="json"
        ).status_code
        == 200
    )

    # The other way round: an open-rate experiment refuses a variant moved to push.
    Experiment.objects.filter(pk=experiment.pk).update(metric="open_rate")
    body = {
        "variants": [
            {"name": "A", "subject": "Hi"},
            {"name": "B", "channel": "push", "push_title": "t", "push_body": "b"},
        ]
    }
    response = api.patch(f"/api/v1/campaigns/{campaign.pk}/", body, format="json")
    assert response.status_code == 400
    assert "Opens are not tracked for push" in response.json()["variants"][0]
    assert "Opens are not tracked for push" in launch_problems(campaign)["experiment"][0]


def test_variant_fields_over_the_api_with_field_errors(api, send_settings):
    customers = scenario.make_customers(3)
    knn = d.recommender("item-knn", customers, d.products("knn", 2))
    campaign = d.experiment_campaign(customers, variants=[{}, {}])
    url = f"/api/v1/campaigns/{campaign.pk}/"
    both = {"variants": [{"name": "A", "send_local_time": "09:00", "send_delay_minutes": 30}]}
    response = api.patch(url, both, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["variants"]["0"]["send_delay_minutes"] == [
        "Choose a local send time or a delay for this variant, not both."
    ]
    for bad in (
        {"channel": "fax"},
        {"send_local_time": "25:00"},
        {"send_delay_minutes": -1},
        {"recommender": 999999},
    ):
        response = api.patch(url, {"variants": [{"name": "A", **bad}]}, format="json")
        assert response.status_code == 400 and list(response.json()["variants"]["0"]) == list(bad), (
            response.content
        )
    good = {
        "variants": [
            {"name": "A", "subject": "Hi", "send_local_time": "09:00"},
            {
                "name": "B",
                "subject": "Hi",
                "channel": "push",
                "send_delay_minutes": 45,
                "recommender": knn.pk,
            },
        ]
    }
    response = api.patch(url, good, format="json")
    assert response.status_code == 200, response.content
    variants = {v["name"]: v for v in response.json()["variants"]}
    assert variants["A"]["send_local_time"] == "09:00:00" and variants["A"]["channel"] == ""
    assert (variants["B"]["channel"], variants["B"]["send_delay_minutes"], variants["B"]["recommender"]) == (
        "push",
        45,
        knn.pk,
    )


def test_the_admin_variant_form_sets_channel_time_and_recommender(client, admin_user, send_settings):
    client.force_login(admin_user)
    customers = scenario.make_customers(2)
    knn = d.recommender("item-knn", customers, d.products("knn", 2))
    campaign = d.experiment_campaign(customers, variants=[{}, {}])
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    data = admin_form_data(client.get(url))
    index = {data[k]: k.split("-")[1] for k in data if k.startswith("variants-") and k.endswith("-name")}
    b = f"variants-{index['B']}-"
    data.update({b + "channel": "push", b + "send_local_time": "18:00", b + "send_delay_minutes": "30"})
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert "Choose a local send time or a delay for this variant, not both." in refused.content.decode()
    data.pop(b + "send_delay_minutes")
    data[b + "recommender"] = str(knn.pk)
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.context and saved.context.get("errors")
    variant = d.variant(campaign, "B")
    assert (variant.channel, variant.send_local_time, variant.recommender_id) == ("push", time(18, 0), knn.pk)


def test_a_variant_without_its_own_time_that_keeps_the_campaign_time(send_settings):
    """A variant without a send time of its own is due at the campaign's time, as before."""
    customers = scenario.make_customers(10)
    campaign = launch_and_write(d.experiment_campaign(customers, variants=[{}, {}]))
    run = campaign.runs.get()
    ledger = rows(campaign)
    assert {r.state for r in ledger} == {SendState.QUEUED}
    assert all(run.scheduled_for <= r.not_before <= timezone.now() for r in ledger)


def test_the_builders_live_preview_renders_with_the_variants_recommender(client, admin_user, send_settings):
    from django.urls import reverse

    client.force_login(admin_user)
    customers = scenario.make_customers(2)
    d.recommender("item-knn", customers, d.products("knn", 4), default=True)
    ease = d.recommender("ease", customers, d.products("ease", 4))
    campaign = d.experiment_campaign(customers, variants=[{}, {"recommender": ease}])
    url = reverse("admin:campaigns_campaign_preview_render", args=[campaign.pk])
    parts = {"subject": "Hi", "html": scenario.HTML, "customer": customers[0].external_id}
    with_ease = client.post(url, {**parts, "name": "B", "recommender": str(ease.pk)}).json()["rendered"]
    default = client.post(url, parts).json()["rendered"]
    assert "ease product 0" in with_ease["html"] and "knn product" not in with_ease["html"]
    assert "knn product 0" in default["html"] and "ease product" not in default["html"]
