"""Segment tasks through a real broker and a real worker process (queue `segments`)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from customers.services import ingest_events
from segments.models import Segment, SegmentMembership, TouchedCustomer
from segments.tasks import refresh, refresh_all
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def members(segment: Segment) -> set[str]:
    return set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "customer__external_id", flat=True
        )
    )


def test_refresh_tasks_run_on_a_real_worker(segments_worker):
    for i in range(4):
        CustomerFactory(external_id=f"w{i}", country="GB" if i < 3 else "FR")
    uk = Segment.objects.create(name="UK", rules={"field": "customer.country", "op": "eq", "value": "GB"})
    refresh.delay(uk.pk)
    wait_for(lambda: Segment.objects.get(pk=uk.pk).refreshed_at is not None)
    uk.refresh_from_db()
    assert uk.refresh_state == "idle" and uk.member_count == 3
    assert members(uk) == {"w0", "w1", "w2"}
    # Twice is harmless: the same diff, no new rows.
    refresh.delay(uk.pk)
    refresh_all.delay()
    previous = uk.refreshed_at
    wait_for(lambda: Segment.objects.get(pk=uk.pk).refreshed_at != previous)
    time.sleep(1.0)
    assert SegmentMembership.objects.filter(segment=uk).count() == 3
    assert "segments.refresh" in segments_worker.output()


def test_ingested_events_refresh_segments_incrementally(segments_worker):
    ann = CustomerFactory(external_id="ann")
    CustomerFactory(external_id="bob")
    active = Segment.objects.create(
        name="Active viewers",
        rules={"field": "event.count", "where": {"type": "view", "within_days": 7}, "op": "gte", "value": 2},
    )
    now = timezone.now()
    rows = [
        {
            "idempotency_key": f"w-{i}",
            "customer": ann.external_id,
            "type": "view",
            "occurred_at": (now - timedelta(hours=i)).isoformat(),
        }
        for i in range(2)
    ]
    assert ingest_events(rows=rows).created == 2  # commits; the signal notes ann and enqueues a drain
    wait_for(lambda: members(active) == {"ann"})
    wait_for(lambda: not TouchedCustomer.objects.exists())
    assert "segments.refresh_touched" in segments_worker.output()


def test_a_worker_killed_mid_refresh_leaves_the_previous_membership(segments_worker):
    """SIGKILL the worker while its refresh transaction is open: PostgreSQL rolls it back whole."""
    from django.db import connection

    ann = CustomerFactory(external_id="ann", country="GB")
    bob = CustomerFactory(external_id="bob", country="FR")
    uk = Segment.objects.create(name="UK", rules={"field": "customer.country", "op": "eq", "value": "GB"})
    refresh.delay(uk.pk)
    wait_for(lambda: members(uk) == {"ann"})
    # Make the next refresh's entry of bob slow, then swap the countries and refresh.
    with connection.cursor() as cursor:
        cursor.execute(
            """CREATE FUNCTION slow_bob() RETURNS trigger AS $$
               BEGIN IF NEW.customer_id = %s THEN PERFORM pg_sleep(8); END IF; RETURN NEW; END
               $$ LANGUAGE plpgsql""",
            [bob.pk],
        )
        cursor.execute(
            "CREATE TRIGGER slow_bob BEFORE INSERT ON segments_segmentmembership "
            "FOR EACH ROW EXECUTE FUNCTION slow_bob()"
        )
    try:
        type(ann).objects.filter(pk=ann.pk).update(country="FR")
        type(bob).objects.filter(pk=bob.pk).update(country="GB")
        refresh.delay(uk.pk)
        wait_for(lambda: Segment.objects.get(pk=uk.pk).refresh_state == "running")
        time.sleep(1.5)  # inside the INSERT: ann's exit is already written in the open transaction
        segments_worker.kill()
        time.sleep(1.0)
        assert members(uk) == {"ann"}  # nothing of the killed refresh is visible
        assert SegmentMembership.objects.filter(segment=uk).count() == 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS slow_bob ON segments_segmentmembership")
            cursor.execute("DROP FUNCTION IF EXISTS slow_bob()")
    segments_worker.start()
    refresh.delay(uk.pk)
    wait_for(lambda: members(uk) == {"bob"})
    assert Segment.objects.get(pk=uk.pk).refresh_state == "idle"
