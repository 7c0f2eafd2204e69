"""Sends survive real faults: SIGKILLed workers, a restarted Redis, an SMTP server refusing for a while.

Real processes throughout: a Celery worker for the `sends` queue, another for `default`, a
`celery beat` running the dispatcher every second (every minute in production), PostgreSQL, Redis
and an aiosmtpd sink. The test process only writes the ledger, injects the fault and watches.
The always-run variants are small (1,000 recipients, 2 kills); the 10,000-recipient kill loop
is marked `slow` (`make reliability-long`).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import redis
from django.conf import settings as django_settings

from campaigns.models import Campaign, CampaignStatus, Send, SendState
from campaigns.services.launch import launch_campaign, write_run_ledger
from tests.integration.campaigns import scenario
from tests.integration.campaigns.conftest import worker_env
from tests.integration.campaigns.real_parts import PrivateRedis

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CHUNK = 50
FAST = {
    "CAMPAIGN_CHUNK_SIZE": CHUNK,
    "CAMPAIGN_LEASE_SECONDS": 4,
    "CAMPAIGN_SENDER_STALE_SECONDS": 3,
    "CAMPAIGN_TASK_BUDGET_SECONDS": 8,
    "CAMPAIGN_RETRY_BASE_SECONDS": 2,
    "CAMPAIGN_RETRY_MAX_SECONDS": 4,
    "CAMPAIGN_TEST_DISPATCH_SECONDS": 1,
}


def prepared_campaign(n: int) -> Campaign:
    customers = scenario.make_customers(n)
    products = scenario.make_products()
    scenario.store_recommendations(customers[:200], products)
    campaign = scenario.make_campaign(scenario.make_segment(customers))
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.DRAFT)
    # This process runs tasks eagerly: keep it from enqueueing (= sending) anything itself. The
    # ledger is written here; beat's dispatcher in the worker processes wakes the senders.
    from unittest import mock

    with (
        mock.patch("campaigns.services.launch._enqueue_prepare"),
        mock.patch("campaigns.services.sending.enqueue_senders"),
    ):
        campaign = launch_campaign(campaign=campaign)
        write_run_ledger(run_id=campaign.runs.get().pk)
    Campaign.objects.filter(pk=campaign.pk).update(heartbeat_at=None)
    return campaign


def wait_until_final(campaign: Campaign, timeout: float, on_tick=None) -> Counter:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = Counter(Send.objects.filter(campaign=campaign).values_list("state", flat=True))
        if on_tick is not None:
            on_tick()
        if (
            not counts.get(SendState.QUEUED)
            and not counts.get(SendState.SENDING)
            and not counts.get(SendState.DEFERRED)
        ):
            campaign.refresh_from_db()
            if campaign.status == CampaignStatus.SENT:
                return counts
        time.sleep(0.2)
    raise AssertionError(f"not finished in {timeout} s: {counts}")


def flush_broker(url: str) -> None:
    redis.Redis.from_url(url).flushdb()


def broker_url() -> str:
    return django_settings.CELERY_BROKER_URL


def run_kill_loop(settings, smtp_sink, start_worker, start_beat, *, n: int, kills: int, timeout: float):
    campaign = prepared_campaign(n)
    flush_broker(broker_url())
    env = worker_env(settings, email_url=smtp_sink.url, **FAST)
    sends_worker = start_worker(env, queues="sends")
    start_worker(env, queues="default")
    start_beat(env)
    thresholds = [int(n * (i + 1) / (kills + 1)) for i in range(kills)]
    done_kills = 0

    def maybe_kill():
        nonlocal done_kills
        if done_kills < kills and smtp_sink.count() >= thresholds[done_kills]:
            sends_worker.kill()
            done_kills += 1
            sends_worker.start(wait=False)

    counts = wait_until_final(campaign, timeout, on_tick=maybe_kill)
    assert done_kills == kills, (smtp_sink.count(), counts, sends_worker.output()[-3000:])
    return campaign, counts, done_kills


def assert_exactly_once(campaign, counts, smtp_sink, n: int, kills: int) -> None:
    assert counts == {SendState.SENT: n}, counts
    sent_customers = Send.objects.filter(campaign=campaign, state=SendState.SENT).values_list(
        "customer_id", flat=True
    )
    assert len(set(sent_customers)) == n
    ids = smtp_sink.message_ids()
    expected = set(Send.objects.filter(campaign=campaign).values_list("message_id", flat=True))
    assert len(expected) == n and "" not in expected
    assert set(ids) == expected  # every recipient reached, nothing else
    duplicates = len(ids) - len(set(ids))
    assert duplicates <= kills * CHUNK, f"{duplicates} duplicates for {kills} kills"
    assert sum(Send.objects.filter(campaign=campaign).values_list("kills", flat=True)) <= kills * CHUNK


def test_sigkilled_sends_worker_loses_nothing_and_sends_nothing_twice(
    settings, smtp_sink, start_worker, start_beat
):
    campaign, counts, kills = run_kill_loop(
        settings, smtp_sink, start_worker, start_beat, n=1000, kills=2, timeout=240
    )
    assert_exactly_once(campaign, counts, smtp_sink, 1000, kills)
    ids = smtp_sink.message_ids()
    print(f"\n1k kill loop: {kills} kills, {len(ids) - len(set(ids))} duplicates at the sink")


@pytest.mark.slow
def test_sigkilled_sends_worker_10k(settings, smtp_sink, start_worker, start_beat):
    campaign, counts, kills = run_kill_loop(
        settings, smtp_sink, start_worker, start_beat, n=10_000, kills=5, timeout=900
    )
    assert_exactly_once(campaign, counts, smtp_sink, 10_000, kills)
    ids = smtp_sink.message_ids()
    print(
        f"\n10k kill loop: {kills} kills, {len(ids) - len(set(ids))} duplicates at the sink, "
        f"{sum(Send.objects.filter(campaign=campaign).values_list('kills', flat=True))} rows re-queued"
    )


def test_redis_restarted_mid_send(settings, smtp_sink, start_worker, start_beat):
    """The broker and the token bucket vanish mid-send; the database knows what is left."""
    private = PrivateRedis().start()
    try:
        n = 1000
        campaign = prepared_campaign(n)
        env = worker_env(
            settings,
            email_url=smtp_sink.url,
            redis_url=private.url(0),
            CAMPAIGN_SEND_RATES="smtp=400",
            **FAST,
        )
        start_worker(env, queues="sends")
        start_worker(env, queues="default")
        start_beat(env)
        restarted = False

        def maybe_restart():
            nonlocal restarted
            if not restarted and smtp_sink.count() >= n // 3:
                private.restart(pause=1.0)
                restarted = True

        counts = wait_until_final(campaign, 240, on_tick=maybe_restart)
        assert restarted
        assert counts == {SendState.SENT: n}
        ids = smtp_sink.message_ids()
        assert len(set(ids)) == n
    finally:
        private.stop()


def test_smtp_refusing_for_a_while_then_recovering(settings, smtp_sink, start_worker, start_beat):
    n = 300
    campaign = prepared_campaign(n)
    flush_broker(broker_url())
    smtp_sink.refuse_from_first_message(8)  # 451 for every message for eight seconds
    env = worker_env(settings, email_url=smtp_sink.url, **FAST)
    start_worker(env, queues="sends")
    start_worker(env, queues="default")
    start_beat(env)
    counts = wait_until_final(campaign, 180)
    assert counts == {SendState.SENT: n}
    retried = Send.objects.filter(campaign=campaign, attempts__gt=1).count()
    assert retried >= CHUNK  # at least the first chunk met the refusals and was retried, not dropped
    assert len(set(smtp_sink.message_ids())) == n
