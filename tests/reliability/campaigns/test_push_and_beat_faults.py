"""A push provider failing (500, then recovering; 410 for expired subscriptions) and two beats
dispatching at once, with real processes: Celery workers, `celery beat`, a local HTTP receiver,
an aiosmtpd sink, PostgreSQL and Redis.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import timedelta
from unittest import mock

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from campaigns.models import Campaign, CampaignRun, CampaignStatus, Channel, ScheduleKind, Send, SendState
from campaigns.services.launch import launch_campaign
from customers.models import PushSubscription
from tests.integration.campaigns import scenario
from tests.integration.campaigns.conftest import worker_env

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FAST = {
    "CAMPAIGN_CHUNK_SIZE": 20,
    "CAMPAIGN_LEASE_SECONDS": 4,
    "CAMPAIGN_SENDER_STALE_SECONDS": 3,
    "CAMPAIGN_TASK_BUDGET_SECONDS": 8,
    "CAMPAIGN_RETRY_BASE_SECONDS": 1,
    "CAMPAIGN_RETRY_MAX_SECONDS": 2,
    "CAMPAIGN_TEST_DISPATCH_SECONDS": 1,
}
CUSTOMER_ADDRESS = re.compile(r"\b(?:c|p|b\d+-)\d+@example\.com")


def flush_broker() -> None:
    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).flushdb()


def launched_without_enqueueing(campaign: Campaign) -> Campaign:
    """Launch in this process without running anything here: beat's dispatcher picks the run up."""
    with mock.patch("campaigns.services.launch._enqueue_prepare"):
        return launch_campaign(campaign=campaign)


def wait_for(predicate, timeout: float, what: str, on_tick=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if on_tick is not None:
            on_tick()
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_push_provider_500_then_recovering_and_410_gone(settings, push_receiver, start_worker, start_beat):
    customers = scenario.make_customers(60, prefix="p", channel=Channel.PUSH)
    paths = {}
    for index, customer in enumerate(customers):
        path = "/gone" if index % 10 == 0 else ("/flaky" if index % 3 == 0 else "/ok")
        paths[customer.pk] = path
        PushSubscription.objects.create(
            customer=customer,
            kind=PushSubscription.Kind.HTTP,
            endpoint=push_receiver.url(path),
            token=f"dev-{customer.pk}",
        )
    push_receiver.statuses = {"/flaky": 500, "/gone": 410}
    campaign = launched_without_enqueueing(
        scenario.make_campaign(scenario.make_segment(customers), channel=Channel.PUSH, name="Push faults")
    )
    flush_broker()
    env = worker_env(settings, email_url="smtp://127.0.0.1:1", **FAST)
    sends_worker = start_worker(env, queues="sends")
    default_worker = start_worker(env, queues="default")
    start_beat(env)

    flaky_failures_started = time.monotonic()
    recovered_at = None

    def recover_after_a_while():
        nonlocal recovered_at
        refused = sum(1 for r in push_receiver.requests if r.path == "/flaky")
        if recovered_at is None and refused >= 20 and time.monotonic() - flaky_failures_started > 5:
            push_receiver.statuses = {"/gone": 410}  # the provider is back
            recovered_at = time.monotonic()

    def finished():
        campaign.refresh_from_db()
        states = Counter(Send.objects.filter(campaign=campaign).values_list("state", flat=True))
        return campaign.status == CampaignStatus.SENT and states

    states = wait_for(finished, 180, "the push campaign to finish", on_tick=recover_after_a_while)
    gone = [pk for pk, path in paths.items() if path == "/gone"]
    assert recovered_at is not None
    assert states == {SendState.SENT: len(customers) - len(gone), SendState.FAILED: len(gone)}
    rows = {s.customer_id: s for s in Send.objects.filter(campaign=campaign)}
    for pk in gone:
        assert "gone" in rows[pk].reason.lower(), rows[pk].reason
    assert not PushSubscription.objects.filter(customer_id__in=gone, active=True).exists()
    assert PushSubscription.objects.filter(active=True).count() == len(customers) - len(gone)
    flaky = [pk for pk, path in paths.items() if path == "/flaky"]
    assert all(rows[pk].attempts > 1 for pk in flaky)  # retried after the 500s, not dropped
    delivered = Counter(r.json()["message_id"] for r in push_receiver.requests if r.path != "/gone")
    sent_ids = {rows[pk].message_id for pk in rows if paths[pk] != "/gone"}
    assert set(delivered) == sent_ids  # every push reached the provider, none for a gone subscription
    for worker in (sends_worker, default_worker):
        assert not CUSTOMER_ADDRESS.search(worker.output())
    print(
        f"\npush faults: {len(flaky)} recipients behind a 500ing endpoint all delivered "
        f"(max attempts {max(rows[pk].attempts for pk in flaky)}), {len(gone)} subscriptions gone (410) "
        f"deactivated, {sum(1 for r in push_receiver.requests if r.path == '/flaky')} requests to the flaky endpoint"
    )


def test_two_beats_never_start_a_campaign_or_a_run_twice(settings, smtp_sink, start_worker, start_beat):
    """Two `celery beat` processes (a deployment mistake) run the dispatcher every second each, for
    recurring campaigns that are due and one-offs waiting for their first run."""
    n = 30
    campaigns = []
    for index in range(3):
        customers = scenario.make_customers(n, prefix=f"b{index}-")
        campaign = scenario.make_campaign(
            scenario.make_segment(customers, name=f"R{index}"),
            name=f"Recurring {index}",
            schedule_kind=ScheduleKind.RECURRING,
            cron="0 3 * * *",
            schedule_timezone="UTC",
        )
        campaign = launched_without_enqueueing(campaign)
        Campaign.objects.filter(pk=campaign.pk).update(next_run_at=timezone.now() - timedelta(seconds=5))
        campaigns.append(campaign)
    for index in range(3, 6):
        customers = scenario.make_customers(n, prefix=f"b{index}-")
        campaign = scenario.make_campaign(
            scenario.make_segment(customers, name=f"O{index}"), name=f"One-off {index}"
        )
        campaigns.append(launched_without_enqueueing(campaign))
    assert CampaignRun.objects.count() == 3  # the one-offs have their pending run; recurring ones none yet
    flush_broker()
    env = worker_env(settings, email_url=smtp_sink.url, **FAST)
    start_worker(env, queues="sends")
    start_worker(env, queues="default", concurrency=2)  # two dispatchers can really run at once
    beats = [start_beat(env), start_beat(env)]

    def all_delivered():
        done = Send.objects.filter(state=SendState.SENT).count() == 6 * n
        return done and not Send.objects.exclude(state=SendState.SENT).exists()

    wait_for(all_delivered, 180, "every campaign to be delivered")
    time.sleep(5)  # both beats keep dispatching: nothing more may start
    assert all(beat.process.poll() is None for beat in beats)
    runs = Counter(CampaignRun.objects.values_list("campaign_id", flat=True))
    assert runs == {c.pk: 1 for c in campaigns}
    per_campaign = Counter(Send.objects.values_list("campaign_id", flat=True))
    assert per_campaign == {c.pk: n for c in campaigns}
    ids = smtp_sink.message_ids()
    assert len(ids) == 6 * n and len(set(ids)) == 6 * n  # no message twice at the provider either
    for campaign in campaigns[3:]:
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.SENT
    for campaign in campaigns[:3]:
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.SCHEDULED and campaign.next_run_at > timezone.now()
    print(
        f"\ntwo beats: {len(campaigns)} campaigns, {sum(runs.values())} runs, {len(ids)} messages, 0 duplicates"
    )
