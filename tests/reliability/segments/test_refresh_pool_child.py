"""A segment refresh whose pool child alone is SIGKILLed mid-way (the out-of-memory killer's way).

Unlike the whole-worker kill in test_refresh_faults.py, the main `celery worker` process lives
on: it sees its child lost (WorkerLostError) and, with `acks_late` and `reject_on_worker_lost`,
puts the message back at once, and another pool child runs the task again. The dead child's
database session is still inside the refresh's transaction (PostgreSQL notices a client gone only
when the running statement ends) and holds the segment's advisory lock -- and, for the hourly
`segments.refresh_all`, the full refresh's session lock -- so the second run waits for it, then
refreshes from the membership the dead one left untouched. Nobody sees a half refresh, no member
gets a second open row, nothing is left `running` or skipped, the reconciler finds nothing to
do, and the worker's other child serves other refreshes meanwhile.

The test finds the child from PostgreSQL: the backend holding the segment's lock (asleep inside
the refresh's INSERT) names its client port, and psutil finds the pool child of the worker's
main process connected from that port. Only that pid is killed.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from segments import reconciler, services
from segments.models import Segment, SegmentMembership
from segments.tasks import reconcile, refresh, refresh_all
from tests.factories.customers import CustomerFactory
from tests.integration.campaigns.real_parts import CeleryWorker, wait_until
from tests.reliability.segments.scenario import (
    PEOPLE,
    Moving,
    backend_alive,
    comes_back,
    deliveries,
    everyone_moves,
    kill_the_sleeping_refresh,
    lock_held,
    lock_waiters,
    members,
    open_rows_per_member,
    segment_lock,
    slow_entry,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# The dead refresh's statement sleeps this long: Celery put the message back 0.4-5 s after the
# kill in these tests, so the second run usually meets the dead session's lock and waits for it.
SLEEP_SECONDS = 12


def assert_put_back_once(worker: CeleryWorker, task: str, task_id: str) -> None:
    """Celery saw its child lost and put the message back: two deliveries of the one task id."""
    log = worker.output()
    assert "WorkerLostError" in log, log[-3000:]
    assert deliveries(log, task, task_id) == 2


def assert_untouched(moving: Moving, backend: int) -> None:
    """Nothing of the dead refresh is visible while its backend sleeps on, holding the lock."""
    uk = moving.uk
    assert members(uk) == moving.british
    assert SegmentMembership.objects.filter(segment=uk).count() == PEOPLE
    assert Segment.objects.get(pk=uk.pk).refresh_state == "running"
    assert backend_alive(backend) and lock_held(uk)


def queued_behind(key: tuple[int, int], backend: int, worker: CeleryWorker) -> str:
    """Whether the redelivered run waited for the dead session's lock `key` or came after it ended."""
    return wait_until(
        lambda: "waited for" if lock_waiters(key) else (None if backend_alive(backend) else "came after"),
        60,
        "the redelivered run to reach the lock",
        worker,
    )


def after_the_dead_session(backend: int, done, what: str, worker: CeleryWorker, killed: float):
    """Seconds from the kill until the dead session ended, and until `done` (the second run's work)."""
    wait_until(lambda: not backend_alive(backend), 30, "the dead session to end")
    ended = time.monotonic() - killed
    wait_until(done, 60, what, worker)
    return ended, time.monotonic() - killed


def assert_refreshed_once(moving: Moving) -> None:
    """The French are members, each with one open row; the British each with one row, closed by
    that refresh; nothing else written."""
    uk = Segment.objects.get(pk=moving.uk.pk)
    assert uk.refresh_state == "idle" and uk.refresh_error == "" and uk.member_count == PEOPLE
    assert members(uk) == {c.external_id for c in moving.french}
    assert set(open_rows_per_member(uk).values()) == {1}
    closed = SegmentMembership.objects.filter(segment=uk, exited_at__isnull=False)
    assert sorted(closed.values_list("customer__external_id", flat=True)) == sorted(moving.british)
    assert set(closed.values_list("exited_at", flat=True)) == {uk.refreshed_at}
    assert SegmentMembership.objects.filter(segment=uk).count() == 2 * PEOPLE


def assert_same_worker_serving(worker: CeleryWorker, main_pid: int, child: int) -> None:
    """The main process never died or restarted; the pool replaced the child."""
    assert worker.alive and worker.process.pid == main_pid and worker.starts == 1
    pool = worker.pool_pids()
    assert len(pool) == 2 and child not in pool


def test_pool_child_killed_mid_refresh_keeps_the_membership_and_the_redelivery_refreshes(
    start_segments_worker, make_api_client, settings
):
    # Two pool children: one runs the refresh and is killed, the other stays free for other work.
    worker = start_segments_worker(concurrency=2)
    main_pid = worker.process.pid
    moving = everyone_moves(worker)
    uk = moving.uk
    api = make_api_client("segments:read")

    # Entering the last French customer sleeps 12 s (once), so the refresh is inside its
    # transaction -- all 30 exits written, 29 entries done -- when its child dies.
    with slow_entry(segment=uk, customer=moving.slowest, seconds=SLEEP_SECONDS) as slow:
        task_id = refresh.delay(uk.pk).id
        child, backend, killed = kill_the_sleeping_refresh(worker, uk)
        other = worker.pool_pids() - {child}
        assert_untouched(moving, backend)
        shown = api.get(f"/api/v1/segments/{uk.pk}/").json()
        assert shown["refresh_state"] == "running" and shown["member_count"] == PEOPLE
        # While the dead backend holds the lock, the reconciler (even with no grace) leaves it alone.
        assert reconciler.reconcile_refreshes(running_grace=timedelta(0)) == []
        assert Segment.objects.get(pk=uk.pk).refresh_state == "running"

        # The main process lives and gets the message back; meanwhile a free child serves another
        # segment's refresh.
        de = Segment.objects.create(name="DE", rules={"field": "customer.country", "op": "eq", "value": "DE"})
        CustomerFactory(external_id="de0", country="DE")
        refresh.delay(de.pk)
        redelivered = comes_back(worker, "segments.refresh", task_id, killed)
        wait_until(lambda: members(de) == {"de0"}, 60, "DE refreshed by the surviving worker", worker)
        de_served = time.monotonic() - killed
        order = queued_behind(segment_lock(uk), backend, worker)
        rolled_back, refreshed = after_the_dead_session(
            backend,
            lambda: Segment.objects.filter(
                pk=uk.pk, refresh_state="idle", refreshed_at__gt=moving.first_refresh
            ).exists(),
            "the redelivered refresh to finish",
            worker,
            killed,
        )
        # The slow entry was reached twice: by the dead refresh (rolled back) and by the one that
        # ran again from the unchanged membership.
        assert slow.entries() == 2

    assert_put_back_once(worker, "segments.refresh", task_id)
    assert_refreshed_once(moving)
    shown = api.get(f"/api/v1/segments/{uk.pk}/").json()
    assert shown["refresh_state"] == "idle" and shown["member_count"] == PEOPLE

    # The reconciler (beat's task, no grace) has nothing to re-queue.
    settings.SEGMENTS_RUNNING_GRACE_SECONDS = 0
    assert reconcile.apply().get() == {"requeued": []}

    # The other child lived on, and the worker still serves.
    assert_same_worker_serving(worker, main_pid, child)
    assert other <= worker.pool_pids()
    CustomerFactory(external_id="de1", country="DE")
    refresh.delay(de.pk)
    wait_until(lambda: members(de) == {"de0", "de1"}, 60, "DE refreshed again", worker)
    print(
        f"\nFIGURE segment refresh pool-child kill: child {child} SIGKILLed inside the refresh's "
        f"transaction, main process {main_pid} alive throughout; the message came back "
        f"{redelivered:.1f} s after the kill; another segment refreshed {de_served:.1f} s after it; "
        f"the redelivered run {order} the dead transaction, which ended {rolled_back:.1f} s after "
        f"the kill; refreshed {refreshed:.1f} s after the kill"
    )


def test_pool_child_killed_mid_full_refresh_loses_no_segment(start_segments_worker, settings):
    worker = start_segments_worker(concurrency=2)
    main_pid = worker.process.pid
    moving = everyone_moves(worker)
    uk = moving.uk
    # After UK in the full refresh's order: its turn never comes in the killed run.
    de = Segment.objects.create(name="DE", rules={"field": "customer.country", "op": "eq", "value": "DE"})
    CustomerFactory(external_id="de0", country="DE")

    with slow_entry(segment=uk, customer=moving.slowest, seconds=SLEEP_SECONDS) as slow:
        task_id = refresh_all.delay().id
        child, backend, killed = kill_the_sleeping_refresh(worker, uk)
        assert_untouched(moving, backend)
        assert members(de) == set() and Segment.objects.get(pk=de.pk).refreshed_at is None

        # The message comes back at once; the dead session still holds the full refresh's lock
        # (and UK's), so the second run waits for it instead of skipping the hour's refresh.
        redelivered = comes_back(worker, "segments.refresh_all", task_id, killed)
        order = queued_behind(services.REFRESH_ALL_LOCK, backend, worker)
        rolled_back, refreshed = after_the_dead_session(
            backend,
            lambda: (
                not Segment.objects.exclude(refresh_state="idle").exists()
                and Segment.objects.get(pk=uk.pk).refreshed_at > moving.first_refresh
                and Segment.objects.get(pk=de.pk).refreshed_at is not None
            ),
            "the redelivered full refresh to refresh every segment",
            worker,
            killed,
        )
        assert slow.entries() == 2

    assert_put_back_once(worker, "segments.refresh_all", task_id)
    log = worker.output()
    assert f"Task segments.refresh_all[{task_id}] succeeded" in log
    assert "another full refresh is running" not in log
    assert_refreshed_once(moving)
    assert members(de) == {"de0"}
    assert Segment.objects.get(pk=de.pk).refresh_error == ""
    settings.SEGMENTS_RUNNING_GRACE_SECONDS = 0
    assert reconcile.apply().get() == {"requeued": []}
    assert_same_worker_serving(worker, main_pid, child)
    print(
        f"\nFIGURE full refresh pool-child kill: child {child} SIGKILLed inside UK's refresh, main "
        f"process {main_pid} alive throughout; the message came back {redelivered:.1f} s after the "
        f"kill; the redelivered run {order} the dead session, which ended {rolled_back:.1f} s after "
        f"the kill; every segment refreshed {refreshed:.1f} s after the kill"
    )
