"""An experiment of email against push, two recommenders and two send times, with real parts only.

A Celery worker and celery beat (PostgreSQL, Redis, an aiosmtpd sink, a local push receiver): the test
launches, then only lets time pass (a deferred row's due time is moved into the past in the ledger)
and reads what arrived. Variant A is email now with the item-knn recommender; variant B is push two
hours later with the ease recommender. Beat's dispatcher must hold B back, then send it when due.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from campaigns.models import CampaignStatus, Send, SendState
from campaigns.services.launch import launch_campaign
from tests.integration.campaigns import scenario
from tests.integration.campaigns.conftest import push_receiver as push_receiver  # noqa: F401
from tests.integration.campaigns.conftest import worker_env
from tests.integration.experiments import dimensions as d

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FAST = {
    "DJANGO_SETTINGS_MODULE": "tests.integration.experiments.worker_settings",
    "CAMPAIGN_CHUNK_SIZE": 25,
    "CAMPAIGN_SENDER_STALE_SECONDS": 3,
    "CAMPAIGN_TASK_BUDGET_SECONDS": 8,
    "EXPERIMENTS_TEST_BEAT_SECONDS": 1,
}


def wait_for(condition, timeout: float, what: str, worker):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n{worker.output()[-3000:]}")


def test_email_now_and_push_later_each_with_its_recommender(
    send_settings, smtp_sink, push_receiver, real_celery, start_worker, start_beat, settings
):
    import redis

    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).flushdb()
    customers = scenario.make_customers(80)
    scenario.grant(customers, channel="push")
    d.subscribe_push(customers, push_receiver)
    knn = d.recommender("item-knn", customers, d.products("knn", 4), default=True)
    ease = d.recommender("ease", customers, d.products("ease", 4))
    campaign = d.experiment_campaign(
        customers,
        variants=[
            {"recommender": knn},
            {"recommender": ease, "channel": "push", "send_delay_minutes": 120},
        ],
    )
    env = worker_env(settings, email_url=smtp_sink.url, **FAST)
    worker = start_worker(env, queues="sends,default", concurrency=2)
    start_beat(env)
    campaign = launch_campaign(campaign=campaign)  # the worker writes the ledger

    ledger = Send.objects.filter(campaign=campaign)
    wait_for(lambda: ledger.count() == 80, 60, "the ledger", worker)
    split = Counter(ledger.values_list("variant__name", "channel"))
    assert set(split) == {("A", "email"), ("B", "push")}
    wait_for(lambda: smtp_sink.count() == split["A", "email"], 90, "variant A's emails", worker)

    run = campaign.runs.get()
    later = ledger.filter(variant__name="B")
    assert set(later.values_list("state", "not_before")) == {
        (SendState.DEFERRED, run.scheduled_for + timedelta(minutes=120))
    }
    time.sleep(3)  # several dispatcher beats: nothing of B goes before its time
    assert (
        push_receiver.requests == [] and later.filter(state=SendState.DEFERRED).count() == split["B", "push"]
    )

    for message in smtp_sink.messages:
        html = message.parsed().get_body(("html",)).get_content()
        assert "knn product 0" in html and "ease product" not in html

    # Two hours pass.
    later.update(not_before=timezone.now() - timedelta(seconds=1))
    wait_for(lambda: len(push_receiver.requests) == split["B", "push"], 90, "variant B's pushes", worker)
    bodies = [json.loads(r.body) for r in push_receiver.requests]
    assert all(b["body"] == "New for you: ease product 0" for b in bodies), bodies[0]
    assert smtp_sink.count() == split["A", "email"]  # nobody got both

    def finished():
        campaign.refresh_from_db()
        return campaign.status == CampaignStatus.SENT

    wait_for(finished, 30, "the campaign to finish", worker)
    assert Counter(ledger.values_list("variant__name", "channel", "state")) == {
        ("A", "email", SendState.SENT): split["A", "email"],
        ("B", "push", SendState.SENT): split["B", "push"],
    }
