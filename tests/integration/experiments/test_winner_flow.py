"""Test-then-send end to end: the sample, the decision, the release, the roll-out messages.

In-process over a real SMTP sink first (fast, every step checked), then with a real Celery worker
and beat, where nothing but the database and the tasks move the campaign along.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Arm, Campaign, CampaignStatus, Send, SendState
from campaigns.services.launch import launch_campaign, write_run_ledger
from campaigns.services.sending import send_campaign_chunks
from experiments.models import Experiment, ExperimentState, Mode
from experiments.services.decision import decide_due, decide_experiment
from experiments.services.results import experiment_results
from tests.integration.campaigns import scenario
from tests.integration.experiments.conftest import engage

# Subjects end with " (B)" for variant B; variant A's subject has no suffix.
EFFECT = {" (B)": 0.35, "": 0.08}
NO_EFFECT = {" (B)": 0.10, "": 0.10}


def make_test_then_send(n: int, **experiment_fields) -> Campaign:
    customers = scenario.make_customers(n)
    campaign = scenario.make_campaign(scenario.make_segment(customers), variants=2)
    fields = {
        "mode": Mode.TEST_THEN_SEND,
        "sample_percent": 50,
        "wait_minutes": 60,
        "min_sample_per_arm": 50,
        "metric": "click_rate",
        "default_variant": campaign.variants.get(name="A"),
    }
    fields.update(experiment_fields)
    Experiment.objects.create(campaign=campaign, **fields)
    return campaign


@pytest.mark.django_db
def test_test_then_send_sends_the_sample_then_the_winner_to_the_rest(send_settings, smtp_sink, client):
    campaign = make_test_then_send(400)
    campaign = launch_campaign(campaign=campaign)
    write_run_ledger(run_id=campaign.runs.get().pk)
    arms = Counter(Send.objects.filter(campaign=campaign).values_list("arm", "state"))
    sample = arms[(Arm.VARIANT, SendState.QUEUED)]
    rest = arms[(Arm.ROLLOUT, SendState.DEFERRED)]
    assert sample + rest == 400 and 150 < sample < 250, arms
    assert set(Send.objects.filter(arm=Arm.ROLLOUT).values_list("not_before", flat=True)) == {None}

    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=60)
    assert smtp_sink.count() == sample  # only the sample went out; the rest waits
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING

    engage(client, smtp_sink.messages, click_rate_by_subject=EFFECT, seed=7)
    experiment = Experiment.objects.get(campaign=campaign)
    assert decide_due() == {"sampling": 1, "decided": 0}  # the sample is in, the window has not passed
    experiment.refresh_from_db()
    assert experiment.sample_completed_at is not None and experiment.state == ExperimentState.SAMPLING
    waiting = experiment_results(experiment=experiment, with_series=False)["decision"]
    assert waiting["due_at"] == (experiment.sample_completed_at + timedelta(minutes=60)).isoformat()

    later = timezone.now() + timedelta(minutes=61)
    assert decide_due(now=later) == {"sampling": 1, "decided": 1}
    assert decide_experiment(experiment_id=experiment.pk, now=later) is False  # safe twice
    experiment.refresh_from_db()
    winner = campaign.variants.get(name="B")
    assert experiment.state == ExperimentState.DECIDED
    assert experiment.winner_id == winner.pk, experiment.decision_reason
    assert experiment.decision_reason.startswith("Variant B wins on click rate: Variant B raised click rate")
    assert experiment.decision_snapshot["switched"] is True

    released = Send.objects.filter(campaign=campaign, arm=Arm.ROLLOUT)
    assert set(released.values_list("variant_id", "state")) == {(winner.pk, SendState.QUEUED)}
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=60)
    assert smtp_sink.count() == 400
    rollout_subjects = {m.subject for m in smtp_sink.messages[sample:]}
    assert all(subject.endswith("(B)") for subject in rollout_subjects)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT

    results = experiment_results(experiment=experiment)
    assert [a["name"] for a in results["arms"]] == ["A", "B"]
    assert sum(a["recipients"] for a in results["arms"]) == sample  # roll-out rows are not in the test
    assert results["srm"]["mismatch"] is False
    assert results["comparisons"][0]["direction"] == 1, results["comparisons"][0]
    assert results["verdict"].startswith("Variant B raised click rate by")
    assert results["decision"]["winner"] == "B"


@pytest.mark.django_db
def test_without_a_clear_difference_the_default_is_sent(send_settings, smtp_sink, client):
    campaign = make_test_then_send(300)
    campaign = launch_campaign(campaign=campaign)
    write_run_ledger(run_id=campaign.runs.get().pk)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=60)
    engage(client, smtp_sink.messages, click_rate_by_subject=NO_EFFECT, seed=3)
    experiment = Experiment.objects.get(campaign=campaign)
    assert decide_experiment(experiment_id=experiment.pk, force=True) is True
    experiment.refresh_from_db()
    assert experiment.winner.name == "A"
    assert "No variant beat Variant A on click rate" in experiment.decision_reason
    assert "Variant A, the default, is sent to the rest." in experiment.decision_reason


@pytest.mark.django_db
def test_too_small_a_sample_keeps_the_default(send_settings, smtp_sink, client):
    campaign = make_test_then_send(60, min_sample_per_arm=100)
    campaign = launch_campaign(campaign=campaign)
    write_run_ledger(run_id=campaign.runs.get().pk)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=60)
    engage(client, smtp_sink.messages, click_rate_by_subject=EFFECT, seed=1)
    experiment = Experiment.objects.get(campaign=campaign)
    decide_experiment(experiment_id=experiment.pk, force=True)
    experiment.refresh_from_db()
    assert experiment.winner.name == "A"
    assert experiment.decision_reason.startswith("Not enough recipients to decide (Variant A had")
