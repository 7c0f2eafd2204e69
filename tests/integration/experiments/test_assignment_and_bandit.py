"""Assignment recorded in the ledger is the stable hash; the bandit shifts each run's split; control lift."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Arm, CampaignRun, ScheduleKind, Send, SendState, TrackingEvent, TrackingKind
from campaigns.services.launch import launch_campaign, write_run_ledger
from customers.models import Order
from experiments.assignment import assign_variant, assignment_point
from experiments.models import Experiment, ExperimentState, Mode
from experiments.services.design import sample_salt
from experiments.services.results import experiment_results
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db


def ledger(campaign) -> dict[int, tuple[str, int | None]]:
    return {
        c: (a, v)
        for c, a, v in Send.objects.filter(campaign=campaign).values_list("customer_id", "arm", "variant_id")
    }


def test_the_ledger_records_the_stable_hash_split_and_a_rewrite_changes_nothing(send_settings):
    send_settings.CAMPAIGN_GLOBAL_HOLDOUT_PERCENT = 5
    customers = scenario.make_customers(3000)
    segment = scenario.make_segment(customers)
    campaign = scenario.make_campaign(segment, variants=3, control_percent=Decimal("10"))
    variants = list(campaign.variants.order_by("id"))
    for variant, weight in zip(variants, (1, 2, 1), strict=True):
        variant.weight = weight
        variant.save()
    Experiment.objects.create(campaign=campaign, metric="conversion_rate")
    campaign = launch_campaign(campaign=campaign)
    assert Experiment.objects.get(campaign=campaign).state == ExperimentState.RUNNING
    run = campaign.runs.get()
    write_run_ledger(run_id=run.pk)
    first = ledger(campaign)
    assert len(first) == 3000
    arms = Counter(arm for arm, _ in first.values())
    assert 100 < arms[Arm.HOLDOUT] < 200 and 220 < arms[Arm.CONTROL] < 350

    # Every variant row is exactly the documented hash of (salt, customer id) over the weights.
    for customer_id, (arm, variant_id) in first.items():
        if arm == Arm.VARIANT:
            assert variants[assign_variant(campaign.assignment_salt, customer_id, [1, 2, 1])].pk == variant_id
    split = Counter(v for a, v in first.values() if a == Arm.VARIANT)
    total = sum(split.values())
    assert abs(split[variants[1].pk] / total - 0.5) < 0.04

    # A crashed writer running again (the run goes back to writing) reaches the same decisions.
    Send.objects.filter(campaign=campaign, customer_id__in=[c.pk for c in customers[::2]]).delete()
    CampaignRun.objects.filter(pk=run.pk).update(
        state="pending", scheduled_for=timezone.now() - timedelta(seconds=1)
    )
    write_run_ledger(run_id=run.pk)
    assert ledger(campaign) == first

    # Another campaign splits the same customers independently (its own salt).
    other = launch_campaign(campaign=scenario.make_campaign(segment, variants=2, name="Other"))
    write_run_ledger(run_id=other.runs.get().pk)
    second = ledger(other)
    both = [(first[c][1], second[c][1]) for c in first if first[c][0] == second[c][0] == Arm.VARIANT]
    crossed = Counter(both)
    # Every pair of variants occurs, in proportion: the second split does not follow the first.
    assert len(crossed) == 3 * 2 and min(crossed.values()) > len(both) / 6 * 0.4


def test_the_test_sample_is_reproducible_from_its_salt(send_settings):
    customers = scenario.make_customers(800)
    campaign = scenario.make_campaign(scenario.make_segment(customers), variants=2)
    Experiment.objects.create(campaign=campaign, mode=Mode.TEST_THEN_SEND, sample_percent=25)
    campaign = launch_campaign(campaign=campaign)
    write_run_ledger(run_id=campaign.runs.get().pk)
    salt = sample_salt(campaign)
    for customer_id, (arm, _) in ledger(campaign).items():
        in_sample = assignment_point(salt, customer_id) < 0.25
        assert arm == (Arm.VARIANT if in_sample else Arm.ROLLOUT)


def test_test_then_send_refuses_a_recurring_campaign_and_a_bandit_a_one_off(send_settings):
    from campaigns.services.launch import LaunchError

    customers = scenario.make_customers(5)
    one_off = scenario.make_campaign(scenario.make_segment(customers), variants=2)
    Experiment.objects.create(campaign=one_off, mode=Mode.BANDIT, metric="click_rate")
    with pytest.raises(LaunchError, match="recurring or triggered"):
        launch_campaign(campaign=one_off)
    recurring = scenario.make_campaign(
        scenario.make_segment(customers, name="x"),
        variants=1,
        schedule_kind=ScheduleKind.RECURRING,
        cron="0 9 * * *",
    )
    Experiment.objects.create(campaign=recurring, mode=Mode.TEST_THEN_SEND)
    with pytest.raises(LaunchError) as raised:
        launch_campaign(campaign=recurring)
    assert "at least two" in str(raised.value) and "one-off" in str(raised.value)


def test_the_bandit_sends_more_of_the_better_variant_in_the_next_run(send_settings):
    customers = scenario.make_customers(1500)
    campaign = scenario.make_campaign(
        scenario.make_segment(customers), variants=2, schedule_kind=ScheduleKind.RECURRING, cron="0 9 * * *"
    )
    a, b = campaign.variants.order_by("id")
    Experiment.objects.create(
        campaign=campaign, mode=Mode.BANDIT, metric="click_rate", bandit_floor=Decimal("0.1")
    )
    campaign = launch_campaign(campaign=campaign)
    now = timezone.now()
    first = CampaignRun.objects.create(
        campaign=campaign, key="occurrence:1", scheduled_for=now - timedelta(days=1)
    )
    write_run_ledger(run_id=first.pk)
    experiment = Experiment.objects.get(campaign=campaign)
    assert experiment.allocation["shares"] == {str(a.pk): 0.5, str(b.pk): 0.5}  # nothing known: weights
    split = Counter(Send.objects.filter(run=first).values_list("variant_id", flat=True))
    assert abs(split[a.pk] - split[b.pk]) < 150

    # B is clicked three times as often.
    Send.objects.filter(run=first).update(state=SendState.SENT, sent_at=now - timedelta(days=1))
    rng = random.Random(3)
    TrackingEvent.objects.bulk_create(
        TrackingEvent(
            send=s,
            campaign=campaign,
            variant_id=s.variant_id,
            customer_id=s.customer_id,
            kind=TrackingKind.CLICK,
            occurred_at=now - timedelta(hours=20),
        )
        for s in Send.objects.filter(run=first)
        if rng.random() < (0.15 if s.variant_id == b.pk else 0.05)
    )
    second = CampaignRun.objects.create(campaign=campaign, key="occurrence:2", scheduled_for=now)
    write_run_ledger(run_id=second.pk)
    experiment.refresh_from_db()
    shares = experiment.allocation["shares"]
    assert shares[str(b.pk)] == pytest.approx(0.9, abs=0.01)  # all but the floor
    assert shares[str(a.pk)] == pytest.approx(0.1, abs=0.01)  # the floor keeps A exploring
    split = Counter(Send.objects.filter(run=second).values_list("variant_id", flat=True))
    assert 0.85 < split[b.pk] / 1500 < 0.95

    results = experiment_results(experiment=experiment, with_series=False)
    assert results["srm"] is None and "bandit" in results["srm_note"]
    assert results["allocation"]["shares"] == shares


def test_control_group_shows_the_lift_of_sending(send_settings):
    customers = scenario.make_customers(2000)
    campaign = scenario.make_campaign(
        scenario.make_segment(customers), variants=2, control_percent=Decimal("30")
    )
    Experiment.objects.create(campaign=campaign, metric="conversion_rate")
    campaign = launch_campaign(campaign=campaign)
    write_run_ledger(run_id=campaign.runs.get().pk)
    start = timezone.now() - timedelta(days=2)
    campaign.runs.update(scheduled_for=start)
    Send.objects.filter(campaign=campaign, arm=Arm.VARIANT).update(state=SendState.SENT, sent_at=start)
    rng = random.Random(9)
    orders = []
    for send in Send.objects.filter(campaign=campaign):
        rate = 0.04 if send.arm == Arm.CONTROL else 0.12
        if rng.random() < rate:
            orders.append(
                Order(
                    external_id=f"c{send.pk}",
                    customer_id=send.customer_id,
                    placed_at=start + timedelta(hours=5),
                    total=Decimal("25"),
                )
            )
    Order.objects.bulk_create(orders)
    results = experiment_results(experiment=Experiment.objects.get(campaign=campaign), with_series=False)
    control = results["control"]
    assert [a["name"] for a in control["arms"]] == ["Control group", "Everyone sent to"]
    assert 450 < control["arms"][0]["recipients"] < 750
    assert control["comparison"]["direction"] == 1, control
    assert control["verdict"].startswith("Everyone sent to raised conversion rate by")
