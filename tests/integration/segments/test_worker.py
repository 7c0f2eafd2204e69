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
