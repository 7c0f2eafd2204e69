"""A segment refresh whose worker is SIGKILLed mid-way, and one whose task was lost.

The killed refresh rolls back whole (PostgreSQL), so the membership is as before; its state,
stuck at `running`, is visible through the API until `segments.reconcile` (beat) sees that no
refresh holds the segment's lock, notes why and queues it again. A refresh whose task was lost
(a purged queue) is re-enqueued the same way. Real parts: PostgreSQL, the Redis broker, a
`celery worker` process group killed with SIGKILL.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from customers.models import Customer
from segments import reconciler, services
from segments.models import Segment, SegmentMembership
from segments.rules.errors import RuleValidationError
from segments.tasks import reconcile, refresh
from tests.factories.customers import CustomerFactory
from tests.integration.campaigns.real_parts import wait_until
from tests.reliability.segments.scenario import lock_held, members, slow_entry

pytestmark = pytest.mark.django_db(transaction=True)


def test_refresh_killed_midway_keeps_the_membership_and_is_reconciled(
    segments_worker, make_api_client, settings
):
    from config.celery_app import app

    uk_people = [CustomerFactory(external_id=f"gb{i}", country="GB") for i in range(20)]
    fr_people = [CustomerFactory(external_id=f"fr{i}", country="FR") for i in range(20)]
    uk = Segment.objects.create(name="UK", rules={"field": "customer.country", "op": "eq", "value": "GB"})
    refresh.delay(uk.pk)
    wait_until(lambda: Segment.objects.get(pk=uk.pk).refreshed_at is not None, 60, "the first refresh")
    before = members(uk)
    assert before == {c.external_id for c in uk_people}
    rows_before = SegmentMembership.objects.filter(segment=uk).count()
    api = make_api_client("segments:read")

    # Everyone moves country; entering the last French customer takes 8 s (a trigger), so the
    # refresh is inside its transaction -- exits written, entries half done -- when it dies.
    Customer.objects.filter(pk__in=[c.pk for c in uk_people]).update(country="FR")
    Customer.objects.filter(pk__in=[c.pk for c in fr_people]).update(country="GB")
    with slow_entry(segment=uk, customer=fr_people[-1], seconds=8):
        refresh.delay(uk.pk)
        wait_until(lambda: lock_held(uk), 60, "the refresh to hold the segment's lock")
        time.sleep(1.0)
        segments_worker.kill()
        killed = time.monotonic()

        assert members(uk) == before  # nothing of the killed refresh is visible
        assert SegmentMembership.objects.filter(segment=uk).count() == rows_before
        shown = api.get(f"/api/v1/segments/{uk.pk}/").json()
        assert shown["refresh_state"] == "running" and shown["member_count"] == 20

        # The server-side statement finishes its sleep, finds its client gone and rolls back.
        # While it holds the lock, the reconciler leaves the segment alone.
        assert lock_held(uk)
        assert reconciler.reconcile_refreshes(running_grace=timedelta(0)) == []
        assert Segment.objects.get(pk=uk.pk).refresh_state == "running"
        wait_until(lambda: not lock_held(uk), 30, "the dead refresh's transaction to end")
        rolled_back = time.monotonic() - killed
    assert members(uk) == before
    assert SegmentMembership.objects.filter(segment=uk).count() == rows_before

    # Meanwhile another segment's refresh was queued and its task lost (the queue purged).
    de = Segment.objects.create(name="DE", rules={"field": "customer.country", "op": "eq", "value": "DE"})
    CustomerFactory(external_id="de0", country="DE")
    services.mark_queued(segment_ids=[de.pk])
    refresh.delay(de.pk)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("segments")
    Segment.objects.filter(pk=de.pk).update(refresh_queued_at=timezone.now() - reconciler.QUEUED_GRACE * 2)

    # The beat task (its 60 s grace shortened): UK is dead, so queued again with the reason; DE
    # was lost, so enqueued again. Both visible through the API meanwhile.
    settings.SEGMENTS_RUNNING_GRACE_SECONDS = 0
    assert reconcile.apply().get() == {"requeued": sorted([uk.pk, de.pk])}
    assert reconcile.apply().get() == {"requeued": []}  # enqueued once
    uk.refresh_from_db()
    assert uk.refresh_state == "queued"
    assert uk.refresh_error.startswith("refresh interrupted: the refresh started")
    assert uk.refresh_error.endswith("the previous membership is unchanged; queued again")
    shown = api.get(f"/api/v1/segments/{uk.pk}/").json()
    assert shown["refresh_state"] == "queued" and shown["refresh_error"] == uk.refresh_error
    assert members(uk) == before

    segments_worker.start()
    wait_until(lambda: members(uk) == {c.external_id for c in fr_people}, 120, "UK refreshed again")
    wait_until(lambda: members(de) == {"de0"}, 120, "DE refreshed")
    for segment in (uk, de):
        segment.refresh_from_db()
        assert segment.refresh_state == "idle" and segment.refresh_error == ""
    assert uk.member_count == 20
    print(f"\nFIGURE segment refresh kill: the dead refresh rolled back {rolled_back:.1f} s after the kill")


def test_a_refresh_interrupted_twice_in_a_row_is_failed_not_requeued(transactional_db):
    segment = Segment.objects.create(
        name="Loop",
        rules={"field": "customer.country", "op": "eq", "value": "GB"},
        refresh_state=Segment.RefreshState.RUNNING,
        refresh_started_at=timezone.now() - timedelta(minutes=5),
        refresh_error="refresh interrupted: the refresh started … ; queued again",
    )
    healthy = Segment.objects.create(
        name="Healthy",
        rules={"field": "customer.country", "op": "eq", "value": "FR"},
        refresh_state=Segment.RefreshState.RUNNING,
        refresh_started_at=timezone.now(),  # within the grace: it may be about to take its lock
    )

    assert reconciler.reconcile_refreshes() == []

    segment.refresh_from_db()
    assert segment.refresh_state == "failed"
    assert segment.refresh_error.endswith("interrupted twice in a row, left to the hourly full refresh")
    assert Segment.objects.get(pk=healthy.pk).refresh_state == "running"


def test_the_interruption_count_ends_with_each_refresh_and_stops_a_refresh_at_the_limit(
    transactional_db, settings
):
    uk = Segment.objects.create(name="UK", rules={"field": "customer.country", "op": "eq", "value": "GB"})
    CustomerFactory(external_id="gb0", country="GB")
    assert services.refresh_segment(segment_id=uk.pk).member_count == 1
    assert Segment.objects.get(pk=uk.pk).refresh_interruptions == 0

    # Two refreshes that never ended: the third attempt still runs, and its end clears the count.
    Segment.objects.filter(pk=uk.pk).update(refresh_interruptions=2)
    CustomerFactory(external_id="gb1", country="GB")
    assert services.refresh_segment(segment_id=uk.pk).entered == 1
    uk.refresh_from_db()
    assert (uk.refresh_interruptions, uk.refresh_state, uk.member_count) == (0, "idle", 2)

    # A refresh that fails normally ended too.
    Segment.objects.filter(pk=uk.pk).update(
        rules={"field": "customer.nope", "op": "eq", "value": "x"}, refresh_interruptions=2
    )
    with pytest.raises(RuleValidationError):
        services.refresh_segment(segment_id=uk.pk)
    uk.refresh_from_db()
    assert uk.refresh_state == "failed" and uk.refresh_interruptions == 0

    # At the limit (a setting) nothing runs: full, incremental or hourly; the membership stays.
    settings.SEGMENTS_REFRESH_MAX_INTERRUPTIONS = 2
    Segment.objects.filter(pk=uk.pk).update(
        rules={"field": "customer.country", "op": "eq", "value": "FR"}, refresh_interruptions=2
    )
    everyone = list(Customer.objects.values_list("pk", flat=True))
    assert services.refresh_segment(segment_id=uk.pk).skipped == "interrupted"
    assert services.refresh_segment(segment_id=uk.pk, customer_ids=everyone).skipped == "interrupted"
    assert [r.skipped for r in services.refresh_segments(segment_ids=[uk.pk])] == ["interrupted"]
    uk.refresh_from_db()
    assert uk.refresh_state == "failed" and uk.refresh_interruptions == 2
    assert uk.refresh_error == services.interrupted_error(2)
    assert uk.refresh_error.startswith("refresh interrupted 2 times in a row (worker killed")
    assert members(uk) == {"gb0", "gb1"} and uk.member_count == 2

    # An explicit request gives it another round; a segment below the limit keeps its count.
    other = Segment.objects.create(name="Other", rules={}, refresh_interruptions=1)
    services.request_refresh(segment_ids=[uk.pk, other.pk])
    uk.refresh_from_db()
    assert uk.refresh_state == "queued" and uk.refresh_interruptions == 0
    assert Segment.objects.get(pk=other.pk).refresh_interruptions == 1
    assert services.refresh_segment(segment_id=uk.pk).exited == 2
    assert Segment.objects.get(pk=uk.pk).refresh_state == "idle"
