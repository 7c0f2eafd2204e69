"""Test-then-send with real parts only: a Celery worker, celery beat, PostgreSQL, Redis, an SMTP sink.

The test process launches the campaign and then only does what the outside world does: customers
click the links in the messages the sink received (variant B truly gets 35 % clicks against A's 8 %),
and time passes (the window is moved into the past in the database). Beat's `experiments.decide_due`
picks the winner and releases the rest; beat's dispatcher and the worker send it.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from campaigns.models import Arm, CampaignStatus, Send, SendState
from campaigns.services.launch import launch_campaign
from experiments.models import Experiment, ExperimentState
from tests.integration.campaigns.conftest import worker_env
from tests.integration.experiments.conftest import engage
from tests.integration.experiments.test_winner_flow import EFFECT, make_test_then_send

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FAST = {
    "DJANGO_SETTINGS_MODULE": "tests.integration.experiments.worker_settings",
    "CAMPAIGN_CHUNK_SIZE": 50,
    "CAMPAIGN_SENDER_STALE_SECONDS": 3,
    "CAMPAIGN_TASK_BUDGET_SECONDS": 8,
    "EXPERIMENTS_TEST_BEAT_SECONDS": 1,
}


def wait_for(condition, timeout: float, what: str, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    tail = worker.output()[-3000:] if worker is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def test_the_truly_better_variant_wins_and_goes_to_the_rest(
    send_settings, smtp_sink, real_celery, start_worker, start_beat, client, settings
):
    import redis

    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).flushdb()
    campaign = make_test_then_send(500, wait_minutes=30)
    env = worker_env(settings, email_url=smtp_sink.url, **FAST)
    worker = start_worker(env, queues="sends,default", concurrency=2)
    start_beat(env)
    campaign = launch_campaign(campaign=campaign)  # enqueues the ledger writer on commit

    experiment = Experiment.objects.get(campaign=campaign)
    wait_for(
        lambda: Experiment.objects.filter(pk=experiment.pk, sample_completed_at__isnull=False).exists(),
        90,
        "the sample to be sent",
        worker,
    )
    sample = Send.objects.filter(campaign=campaign, arm=Arm.VARIANT, state=SendState.SENT).count()
    waiting = Send.objects.filter(campaign=campaign, arm=Arm.ROLLOUT, state=SendState.DEFERRED).count()
    assert sample + waiting == 500 and smtp_sink.count() == sample
    time.sleep(2)  # several beats: nothing is decided before the window
    assert Experiment.objects.get(pk=experiment.pk).state == ExperimentState.SAMPLING

    engage(client, list(smtp_sink.messages), click_rate_by_subject=EFFECT, seed=5)
    # The window passes.
    Experiment.objects.filter(pk=experiment.pk).update(
        sample_completed_at=timezone.now() - timedelta(minutes=31)
    )

    wait_for(
        lambda: Experiment.objects.filter(pk=experiment.pk, state=ExperimentState.DECIDED).exists(),
        30,
        "the decision",
        worker,
    )
    experiment.refresh_from_db()
    assert experiment.winner.name == "B", experiment.decision_reason
    wait_for(lambda: smtp_sink.count() == 500, 90, "the roll-out", worker)

    def sent():
        campaign.refresh_from_db()
        return campaign.status == CampaignStatus.SENT

    wait_for(sent, 30, "the campaign to finish", worker)
    assert Counter(Send.objects.filter(campaign=campaign).values_list("state", flat=True)) == {
        SendState.SENT: 500
    }
    rollout = list(smtp_sink.messages[sample:])
    assert len(rollout) == waiting and all(m.subject.endswith("(B)") for m in rollout)
    assert len(set(smtp_sink.message_ids())) == 500  # nobody got two messages
