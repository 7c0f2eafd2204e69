"""A segment refresh whose pool child is killed on every run, and an incremental drain killed once.

A rule whose query exhausts the worker's memory has its pool child killed by the out-of-memory
killer on every run, and Celery (`acks_late`, `reject_on_worker_lost`) puts the message back at
once each time. The refresh counts its attempts on the segment, committed before its transaction
starts: after SEGMENTS_REFRESH_MAX_INTERRUPTIONS (3) starts without an end, the next delivery does
not run the query again; it fails the segment with the reason and acks the message, so the queue
moves on. The hourly full refresh leaves the segment alone; an explicit refresh (the API) tries
it again.

`segments.refresh_touched` killed in its pool child loses no touched customer: the rows go only
after their refresh committed, so the next drain (beat's, every minute) refreshes them.

The kill is the one of test_refresh_pool_child.py: the refresh sleeps inside its INSERT (a
trigger), and only the pool child connected to the sleeping backend is SIGKILLed.
"""

from __future__ import annotations

import time

import pytest

from customers.models import Customer
from segments import drain, services
from segments.models import Segment, SegmentMembership, TouchedCustomer
from segments.tasks import reconcile, refresh, refresh_all, refresh_touched
from tests.factories.customers import CustomerFactory
from tests.integration.campaigns.real_parts import wait_until
from tests.reliability.segments.scenario import (
    PEOPLE,
    backend_alive,
    comes_back,
    deliveries,
    everyone_moves,
    kill_the_sleeping_refresh,
    members,
    open_rows_per_member,
)
from tests.reliability.segments.scenario import (
    slow_entry as sleeping_entry,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Each killed refresh's backend sleeps on for the rest of this before PostgreSQL ends it.
SLEEP_SECONDS = 6
# The touched drain's dead session sleeps longer: the message comes back 0.4-5 s after the kill,
# so the redelivered drain usually finds the dead one still holding the drain's lock.
DRAIN_SLEEP_SECONDS = 12


def interruptions(segment: Segment) -> int:
    return Segment.objects.get(pk=segment.pk).refresh_interruptions


def test_a_refresh_killing_its_worker_every_time_is_failed_after_three_and_the_queue_moves_on(
    start_segments_worker, make_api_client, settings
):
    limit = services.max_refresh_interruptions()
    assert limit == 3
    worker = start_segments_worker(concurrency=1)  # one child: a looping refresh would hold the queue
    moving = everyone_moves(worker)
    uk = moving.uk
    api = make_api_client("segments:read", "segments:write")

    # Every run of UK's refresh is killed inside its transaction (the out-of-memory killer's way).
    with sleeping_entry(segment=uk, customer=moving.slowest, seconds=SLEEP_SECONDS, times=limit) as slow:
        task_id = refresh.delay(uk.pk).id
        killed_backends: set[int] = set()
        killed = time.monotonic()
        for attempt in range(1, limit + 1):
            if attempt > 1:
                comes_back(worker, "segments.refresh", task_id, killed, delivery=attempt)
            child, backend, killed = kill_the_sleeping_refresh(
                worker, uk, not_backends=frozenset(killed_backends)
            )
            killed_backends.add(backend)
            # The attempt was counted (and committed) before the transaction that died.
            assert interruptions(uk) == attempt
            assert members(uk) == moving.british
            assert Segment.objects.get(pk=uk.pk).refresh_state == "running"

        # The fourth delivery waits for the third dead session's lock, finds three interruptions
        # in a row and gives up without running the query: failed with the reason, message acked.
        comes_back(worker, "segments.refresh", task_id, killed, delivery=limit + 1)
        wait_until(
            lambda: Segment.objects.filter(pk=uk.pk, refresh_state="failed").exists(),
            60,
            "the refresh to give up",
            worker,
        )
        gave_up = time.monotonic() - killed
        wait_until(
            lambda: f"Task segments.refresh[{task_id}] succeeded" in worker.output(),
            30,
            "the message to be acked",
            worker,
        )
        assert slow.entries() == limit  # the query ran three times, never a fourth
        assert not any(backend_alive(b) for b in killed_backends)

        # The queue moves on: the one child serves the next refresh.
        de = Segment.objects.create(name="DE", rules={"field": "customer.country", "op": "eq", "value": "DE"})
        CustomerFactory(external_id="de0", country="DE")
        refresh.delay(de.pk)
        wait_until(lambda: members(de) == {"de0"}, 60, "DE refreshed after the given-up one", worker)

        uk.refresh_from_db()
        error = (
            "refresh interrupted 3 times in a row (worker killed, e.g. out of memory); "
            "fix the rule or raise the worker's memory, then refresh again"
        )
        assert uk.refresh_state == "failed" and uk.refresh_error == error
        assert uk.refresh_interruptions == limit
        assert members(uk) == moving.british and uk.member_count == PEOPLE
        assert SegmentMembership.objects.filter(segment=uk).count() == PEOPLE
        assert uk.refreshed_at == moving.first_refresh
        log = worker.output()
        assert "WorkerLostError" in log
        assert deliveries(log, "segments.refresh", task_id) == limit + 1
        shown = api.get(f"/api/v1/segments/{uk.pk}/").json()
        assert shown["refresh_state"] == "failed" and shown["refresh_error"] == error

        # Neither the hourly full refresh nor the reconciler runs it again (the rule stays as it was).
        full = refresh_all.delay().id
        wait_until(
            lambda: f"Task segments.refresh_all[{full}] succeeded" in worker.output(), 60, "refresh_all"
        )
        assert "'segments': 2, 'failed': 1" in worker.output()
        uk.refresh_from_db()
        assert uk.refresh_state == "failed" and uk.refresh_error == error and members(uk) == moving.british
        settings.SEGMENTS_RUNNING_GRACE_SECONDS = 0
        assert reconcile.apply().get() == {"requeued": []}
        assert slow.entries() == limit

    # The rule (here: the trigger) is fixed; a refresh asked for through the API runs again.
    response = api.post(f"/api/v1/segments/{uk.pk}/refresh/")
    assert response.status_code == 202 and response.json()["refresh_state"] == "queued"
    wait_until(
        lambda: Segment.objects.filter(pk=uk.pk, refresh_state="idle").exists(), 60, "UK refreshed", worker
    )
    uk.refresh_from_db()
    assert uk.refresh_error == "" and uk.refresh_interruptions == 0 and uk.member_count == PEOPLE
    assert members(uk) == {c.external_id for c in moving.french}
    assert set(open_rows_per_member(uk).values()) == {1}
    assert worker.alive and worker.starts == 1
    print(
        f"\nFIGURE segment refresh killed {limit} times in a row: the {limit + 1}th delivery gave up "
        f"{gave_up:.1f} s after the last kill, without running the query; the next refresh was served"
    )


def test_touched_drain_killed_in_its_pool_child_loses_no_touched_customer(start_segments_worker):
    worker = start_segments_worker(concurrency=2)
    moving = everyone_moves(worker)
    uk = moving.uk
    TouchedCustomer.objects.all().delete()
    everyone = list(Customer.objects.values_list("pk", flat=True))
    drain.touch_customers(customer_ids=everyone)
    touched = set(TouchedCustomer.objects.values_list("customer_id", flat=True))
    assert touched == set(everyone) and len(touched) == 2 * PEOPLE

    with sleeping_entry(segment=uk, customer=moving.slowest, seconds=DRAIN_SLEEP_SECONDS) as slow:
        task_id = refresh_touched.delay().id
        child, backend, killed = kill_the_sleeping_refresh(worker, uk)
        # Nothing of the dead drain is visible; every touch is still there.
        assert members(uk) == moving.british
        assert set(TouchedCustomer.objects.values_list("customer_id", flat=True)) == touched
        assert interruptions(uk) == 1

        comes_back(worker, "segments.refresh_touched", task_id, killed)
        wait_until(
            lambda: f"Task segments.refresh_touched[{task_id}] succeeded" in worker.output(),
            60,
            "the redelivered drain to end",
            worker,
        )
        # Either it found the dead drain's session still holding the drain's lock (and left the
        # touches to the next drain) or it came after that session ended and drained them itself.
        skipped = "another drain is running" in worker.output()
        wait_until(lambda: not backend_alive(backend), 30, "the dead session to end")
        assert members(uk) == (moving.british if skipped else {c.external_id for c in moving.french})
        if skipped:
            assert set(TouchedCustomer.objects.values_list("customer_id", flat=True)) == touched
            # Beat's next drain (every minute).
            next_drain = refresh_touched.delay().id
            wait_until(
                lambda: f"Task segments.refresh_touched[{next_drain}] succeeded" in worker.output(),
                60,
                "the next drain",
                worker,
            )
        drained = time.monotonic() - killed
        assert slow.entries() == 2  # the dead drain's entry (rolled back) and the one that committed

    assert not TouchedCustomer.objects.exists()
    uk.refresh_from_db()
    assert members(uk) == {c.external_id for c in moving.french}
    assert set(open_rows_per_member(uk).values()) == {1}
    closed = SegmentMembership.objects.filter(segment=uk, exited_at__isnull=False)
    assert sorted(closed.values_list("customer__external_id", flat=True)) == sorted(moving.british)
    assert len(set(closed.values_list("exited_at", flat=True))) == 1  # by one drain
    assert SegmentMembership.objects.filter(segment=uk).count() == 2 * PEOPLE
    assert uk.member_count == PEOPLE and uk.refresh_interruptions == 0
    assert uk.refresh_state == "idle" and uk.refresh_error == ""
    print(
        f"\nFIGURE touched drain pool-child kill: child {child} SIGKILLed inside UK's incremental "
        f"refresh; the redelivered drain {'skipped (the dead drain held its lock)' if skipped else 'drained'}; "
        f"every touched customer refreshed {drained:.1f} s after the kill"
    )
