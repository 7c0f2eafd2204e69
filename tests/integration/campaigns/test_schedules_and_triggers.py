"""Clock arithmetic, recurring occurrences, the dispatcher, and triggered campaigns (run keys, delays)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from campaigns import schedule
from campaigns.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    RunState,
    ScheduleKind,
    Send,
    SendState,
    TriggerKind,
)
from campaigns.services.launch import launch_campaign, open_due_occurrences, write_trigger_ledgers
from campaigns.services.sending import dispatch_due, send_campaign_chunks
from campaigns.services.triggers import fire_event_triggers, scan_triggers
from customers.models import Event
from loyalty.models import LoyaltyProgram, Membership, PointsLot, PointsTransaction
from segments.models import SegmentMembership
from tests.integration.campaigns import scenario

LONDON = ZoneInfo("Europe/London")


# ---------------------------------------------------------------------------------------------
# Pure clock arithmetic


def test_cron_keeps_the_local_wall_clock_across_daylight_saving():
    after = datetime(2024, 3, 30, 12, 0, tzinfo=UTC)
    first = schedule.next_occurrence("0 9 * * *", after, LONDON)
    second = schedule.next_occurrence("0 9 * * *", first, LONDON)
    assert first == datetime(2024, 3, 31, 8, 0, tzinfo=UTC)  # 09:00 BST
    assert second == datetime(2024, 4, 1, 8, 0, tzinfo=UTC)
    assert schedule.next_occurrence(
        "0 9 * * *", datetime(2024, 3, 29, 12, 0, tzinfo=UTC), LONDON
    ) == datetime(2024, 3, 30, 9, 0, tzinfo=UTC)  # 09:00 GMT the day before


def test_cron_fields_names_and_the_day_rule():
    after = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # a Wednesday
    assert schedule.next_occurrence("30 9 * * mon", after, ZoneInfo("UTC")) == datetime(
        2024, 5, 6, 9, 30, tzinfo=UTC
    )
    assert schedule.next_occurrence("*/15 * * * *", after, ZoneInfo("UTC")) == datetime(
        2024, 5, 1, 12, 15, tzinfo=UTC
    )
    # Both day fields restricted: either matches (cron's rule) -- the 10th or the next Friday.
    assert schedule.next_occurrence("0 8 10 * fri", after, ZoneInfo("UTC")) == datetime(
        2024, 5, 3, 8, 0, tzinfo=UTC
    )
    for bad in ("", "* * *", "61 * * * *", "0 9 * * someday"):
        with pytest.raises(schedule.CronError):
            schedule.next_occurrence(bad, after, ZoneInfo("UTC"))


def test_local_times_in_a_daylight_saving_gap_land_after_the_jump():
    berlin = ZoneInfo("Europe/Berlin")
    assert schedule.at_local(date(2024, 3, 31), time(2, 30), berlin) == datetime(
        2024, 3, 31, 1, 30, tzinfo=UTC
    )
    assert schedule.at_local(date(2024, 1, 15), time(9, 0), berlin) == datetime(2024, 1, 15, 8, 0, tzinfo=UTC)


def test_quiet_hours_overnight_and_same_day():
    utc = ZoneInfo("UTC")
    night = (time(21, 0), time(8, 0))
    assert schedule.quiet_until(datetime(2024, 5, 1, 22, 0, tzinfo=UTC), utc, *night) == datetime(
        2024, 5, 2, 8, 0, tzinfo=UTC
    )
    assert schedule.quiet_until(datetime(2024, 5, 1, 3, 0, tzinfo=UTC), utc, *night) == datetime(
        2024, 5, 1, 8, 0, tzinfo=UTC
    )
    assert schedule.quiet_until(datetime(2024, 5, 1, 12, 0, tzinfo=UTC), utc, *night) is None
    lunch = (time(12, 0), time(13, 0))
    assert schedule.quiet_until(datetime(2024, 5, 1, 12, 30, tzinfo=UTC), utc, *lunch) == datetime(
        2024, 5, 1, 13, 0, tzinfo=UTC
    )
    assert schedule.quiet_until(datetime(2024, 5, 1, 13, 0, tzinfo=UTC), utc, *lunch) is None
    assert schedule.quiet_until(datetime(2024, 5, 1, 13, 0, tzinfo=UTC), utc, time(9, 0), time(9, 0)) is None
    tokyo = ZoneInfo("Asia/Tokyo")  # 22:00 UTC is 07:00 in Tokyo: quiet until 08:00 there
    assert schedule.quiet_until(datetime(2024, 5, 1, 22, 0, tzinfo=UTC), tokyo, *night) == datetime(
        2024, 5, 1, 23, 0, tzinfo=UTC
    )


def test_unknown_zones_fall_back():
    assert schedule.zone("Not/AZone", "Europe/Paris").key == "Europe/Paris"
    assert schedule.zone("", "").key == "UTC"


# ---------------------------------------------------------------------------------------------
# Recurring campaigns and the dispatcher


@pytest.mark.django_db
def test_recurring_occurrences_run_once_each_and_send(
    send_settings, smtp_sink, django_capture_on_commit_callbacks
):
    customers = scenario.make_customers(5)
    campaign = scenario.make_campaign(
        scenario.make_segment(customers),
        schedule_kind=ScheduleKind.RECURRING,
        cron="0 9 * * *",
        schedule_timezone="Europe/London",
    )
    campaign = launch_campaign(campaign=campaign)
    assert campaign.status == CampaignStatus.SCHEDULED
    assert campaign.next_run_at.astimezone(LONDON).hour == 9
    due = timezone.now() - timedelta(minutes=1)
    Campaign.objects.filter(pk=campaign.pk).update(next_run_at=due)

    with django_capture_on_commit_callbacks(execute=True):
        report = dispatch_due()  # eager tasks: the occurrence's ledger is written and sent inline
    assert report["occurrences"] == 1
    assert open_due_occurrences(now=timezone.now()) == []  # already advanced to tomorrow
    run = CampaignRun.objects.get(campaign=campaign)
    assert run.key == f"occurrence:{due.isoformat()}"
    assert Send.objects.filter(run=run, state=SendState.SENT).count() == 5
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED  # a recurring campaign stays armed
    assert campaign.next_run_at > timezone.now()


@pytest.mark.django_db(transaction=True)
def test_two_beats_dispatching_at_once_start_each_occurrence_once(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.SITE_URL = "https://testserver"
    customers = scenario.make_customers(3)
    campaign = scenario.make_campaign(
        scenario.make_segment(customers), schedule_kind=ScheduleKind.RECURRING, cron="*/5 * * * *"
    )
    campaign = launch_campaign(campaign=campaign)
    Campaign.objects.filter(pk=campaign.pk).update(next_run_at=timezone.now() - timedelta(seconds=5))
    barrier = threading.Barrier(4)
    created: list[list[int]] = []

    def beat():
        try:
            barrier.wait()
            created.append(open_due_occurrences(now=timezone.now()))
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(len(ids) for ids in created) == 1
    assert CampaignRun.objects.filter(campaign=campaign).count() == 1


@pytest.mark.django_db
def test_a_scheduled_one_off_starts_when_due(send_settings, smtp_sink, django_capture_on_commit_callbacks):
    customers = scenario.make_customers(4)
    campaign = scenario.make_campaign(
        scenario.make_segment(customers),
        schedule_kind=ScheduleKind.AT,
        send_at=timezone.now() + timedelta(hours=1),
    )
    campaign = launch_campaign(campaign=campaign)
    dispatch_due()
    assert Send.objects.count() == 0  # not yet
    CampaignRun.objects.filter(campaign=campaign).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        dispatch_due()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT
    assert smtp_sink.count() == 4


@pytest.mark.django_db
def test_the_dispatcher_returns_expired_leases_and_fails_a_chunk_that_killed_three_workers(
    send_settings, smtp_sink
):
    customers = scenario.make_customers(6)
    campaign = launch_campaign(campaign=scenario.make_campaign(scenario.make_segment(customers)))
    from campaigns.services.launch import write_run_ledger
    from campaigns.services.sending import claim_chunk, reclaim_expired_leases

    write_run_ledger(run_id=campaign.runs.get().pk)  # (its on-commit sender start never fires in this test)
    poison = Send.objects.filter(campaign=campaign).order_by("id").first()
    for attempt in range(3):
        claimed = claim_chunk(campaign_id=campaign.pk, owner=f"doomed-{attempt}", size=1, lease_seconds=60)
        assert [c.id for c in claimed] == [poison.pk]
        Send.objects.filter(pk=poison.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )  # the worker died
        result = reclaim_expired_leases()
        poison.refresh_from_db()
        if attempt < 2:
            assert result == {"requeued": 1, "failed": 0} and poison.state == SendState.QUEUED
            Send.objects.filter(pk=poison.pk).update(
                not_before=timezone.now() - timedelta(days=1)
            )  # first in line again
    assert poison.state == SendState.FAILED and poison.kills == 3
    assert poison.reason == "its chunk killed the sending worker 3 times"
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert Send.objects.filter(campaign=campaign, state=SendState.SENT).count() == 5


# ---------------------------------------------------------------------------------------------
# Triggers


def armed(segment=None, **fields) -> Campaign:
    campaign = scenario.make_campaign(segment, schedule_kind=ScheduleKind.TRIGGERED, **fields)
    return launch_campaign(campaign=campaign)


@pytest.mark.django_db
def test_an_event_trigger_runs_once_per_event_after_its_delay(send_settings, smtp_sink):
    customer = scenario.make_customers(1)[0]
    Event.objects.create(
        customer=customer,
        type="add_to_cart",
        occurred_at=timezone.now() - timedelta(days=1),
        idempotency_key="old",
    )
    campaign = armed(
        trigger_kind=TriggerKind.EVENT, trigger_event_type="add_to_cart", trigger_delay_minutes=30
    )
    assert campaign.status == CampaignStatus.SCHEDULED
    event = Event.objects.create(
        customer=customer, type="add_to_cart", occurred_at=timezone.now(), idempotency_key="cart-1"
    )
    Event.objects.create(customer=customer, type="view", occurred_at=timezone.now(), idempotency_key="view-1")

    assert scan_triggers()["events"] == 1
    assert fire_event_triggers(event_ids=[event.pk]) == 1  # re-delivered: offered again...
    assert scan_triggers()["events"] == 0
    run = CampaignRun.objects.get(campaign=campaign)  # ...but only one run exists
    assert run.key == f"event:{event.pk}" and run.trigger_customer == customer
    assert run.scheduled_for == event.occurred_at + timedelta(minutes=30)

    write_trigger_ledgers()
    send = Send.objects.get(run=run)
    assert send.state == SendState.DEFERRED and send.reason == "waiting for its send time"
    assert send.not_before == run.scheduled_for
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert smtp_sink.count() == 0
    Send.objects.filter(pk=send.pk).update(not_before=timezone.now())  # the delay passed
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert smtp_sink.count() == 1
    dispatch_due()
    run.refresh_from_db()
    assert run.state == RunState.DONE


@pytest.mark.django_db
def test_entering_a_segment_triggers_and_the_audience_filter_applies(send_settings):
    customers = scenario.make_customers(3)
    vip = scenario.make_segment([], name="VIP")
    excluded = scenario.make_segment([customers[2]], name="Staff")
    campaign = scenario.make_campaign(
        None,
        schedule_kind=ScheduleKind.TRIGGERED,
        trigger_kind=TriggerKind.SEGMENT_ENTRY,
        trigger_segment=vip,
    )
    campaign.exclude_segments.add(excluded)
    campaign = launch_campaign(campaign=campaign)
    for customer in customers:
        SegmentMembership.objects.create(segment=vip, customer=customer, entered_at=timezone.now())
    assert scan_triggers()["segment_entries"] == 3
    write_trigger_ledgers()
    sent_to = set(Send.objects.filter(campaign=campaign).values_list("customer_id", flat=True))
    assert sent_to == {customers[0].pk, customers[1].pk}  # staff excluded
    assert CampaignRun.objects.filter(campaign=campaign, audience_size=0).count() == 1


@pytest.mark.django_db
def test_points_about_to_expire_trigger_once_per_expiry(send_settings):
    customer = scenario.make_customers(1)[0]
    program = LoyaltyProgram.objects.create(name="Club", slug="club")
    membership = Membership.objects.create(
        program=program, customer=customer, balance=120, joined_at=timezone.now()
    )
    earned = PointsTransaction.objects.create(
        membership=membership,
        kind="earn",
        points=120,
        balance_after=120,
        idempotency_key="e1",
        occurred_at=timezone.now(),
    )
    PointsLot.objects.create(
        membership=membership, earned_by=earned, remaining=120, expires_at=timezone.now() + timedelta(days=3)
    )
    campaign = armed(trigger_kind=TriggerKind.POINTS_EXPIRING, trigger_points_days=7)
    assert scan_triggers()["points_expiring"] == 1
    scan_triggers()
    assert CampaignRun.objects.filter(campaign=campaign).count() == 1
    write_trigger_ledgers()
    send = Send.objects.get(campaign=campaign)
    assert send.state == SendState.QUEUED


@pytest.mark.django_db
def test_loyalty_status_reaches_the_template(send_settings, smtp_sink):
    customer = scenario.make_customers(1)[0]
    program = LoyaltyProgram.objects.create(name="Club", slug="club")
    from loyalty.models import Tier

    silver = Tier.objects.create(program=program, name="Silver", threshold=100)
    Tier.objects.create(program=program, name="Gold", threshold=500)
    membership = Membership.objects.create(
        program=program,
        customer=customer,
        tier=silver,
        balance=320,
        lifetime_points=350,
        joined_at=timezone.now(),
    )
    earned = PointsTransaction.objects.create(
        membership=membership,
        kind="earn",
        points=80,
        balance_after=320,
        idempotency_key="e2",
        occurred_at=timezone.now(),
    )
    PointsLot.objects.create(
        membership=membership, earned_by=earned, remaining=80, expires_at=timezone.now() + timedelta(days=5)
    )
    html = (
        "<p>{{ loyalty.tier }}: {{ loyalty.points }} points, {{ loyalty.points_expiring }} expire; "
        "{{ loyalty.points_to_next_tier }} to {{ loyalty.next_tier }}</p>"
    )
    campaign = launch_campaign(campaign=scenario.make_campaign(scenario.make_segment([customer]), html=html))
    from campaigns.services.launch import write_run_ledger

    write_run_ledger(run_id=campaign.runs.get().pk)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    body = smtp_sink.messages[0].parsed().get_body(("html",)).get_content()
    assert "Silver: 320 points, 80 expire; 150 to Gold" in body
