"""The segment refresh fault tests' shared parts: who is a member, who holds a refresh, a slow entry.

A refresh holds the advisory lock (LOCK_NAMESPACE, segment id) -- a session lock taken before it
counts its attempt, and the transaction's -- for its whole transaction, so PostgreSQL's lock table tells whether a refresh is alive, which backend runs it and whether
another one waits behind it; the backend's client port tells which worker process it serves.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psutil
from django.db import connection

from customers.models import Customer
from segments import services
from segments.models import Segment, SegmentMembership
from segments.tasks import refresh
from tests.factories.customers import CustomerFactory
from tests.integration.campaigns.real_parts import CeleryWorker, dead, wait_until


def members(segment: Segment) -> set[str]:
    return set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "customer__external_id", flat=True
        )
    )


def open_rows_per_member(segment: Segment) -> Counter:
    """How many open membership rows each current member has (one, or the ledger is wrong)."""
    return Counter(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "customer__external_id", flat=True
        )
    )


def segment_lock(segment: Segment) -> tuple[int, int]:
    """The key of a segment's refresh lock (pg_advisory_xact_lock(LOCK_NAMESPACE, segment id))."""
    return services.LOCK_NAMESPACE, segment.pk


def _lock_pids(key: tuple[int, int], where: str) -> list[int]:
    """Backends holding or waiting for the two-key advisory lock `key`, filtered by `where`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = %s "
            f"AND l.objid = %s AND l.objsubid = 2 {where}",  # noqa: S608 - constants only
            list(key),
        )
        return [row[0] for row in cursor.fetchall()]


def lock_held(segment: Segment) -> bool:
    """Whether any session holds the segment's refresh lock."""
    return bool(_lock_pids(segment_lock(segment), "AND l.granted"))


def lock_waiters(key: tuple[int, int]) -> int:
    """How many sessions wait for an advisory lock (a refresh queued behind another)."""
    return len(_lock_pids(key, "AND NOT l.granted"))


def sleeping_refresh(segment: Segment) -> int | None:
    """The backend pid of the refresh holding the segment's lock while it sleeps in slow_entry()."""
    pids = _lock_pids(
        segment_lock(segment),
        "AND l.granted AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.pid "
        "AND a.wait_event = 'PgSleep')",
    )
    return pids[0] if pids else None


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] > 0


def pool_child_of(worker: CeleryWorker, backend_pid: int) -> int | None:
    """The worker's pool child whose database connection is served by `backend_pid` (by client port)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_port FROM pg_stat_activity WHERE pid = %s", [backend_pid])
        row = cursor.fetchone()
    if row is None or row[0] is None:
        return None
    for pid in worker.pool_pids():
        try:
            sockets = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        if any(s.laddr and s.laddr.port == row[0] and s.raddr for s in sockets):
            return pid
    return None


@dataclass
class SlowEntry:
    """Counts the refreshes that reached the slow customer's entry (a sequence: not rolled back)."""

    def entries(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM slow_entry_seen")
            return cursor.fetchone()[0]


@contextmanager
def slow_entry(*, segment: Segment, customer: Customer, seconds: float, times: int = 1):
    """The first `times` refreshes to enter `customer` into `segment` sleep `seconds` inside that INSERT.

    A BEFORE INSERT trigger on the membership table: the refresh is then inside its transaction,
    exits written and entries half done, holding the segment's lock. Only the first entries
    sleep, so a refresh that runs again afterwards goes through at full speed. Dropped on exit.
    """
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE slow_entry_seen")
        cursor.execute(
            """CREATE FUNCTION slow_entry() RETURNS trigger AS $$
               BEGIN
                 IF NEW.segment_id = %s AND NEW.customer_id = %s THEN
                   IF nextval('slow_entry_seen') <= %s THEN PERFORM pg_sleep(%s); END IF;
                 END IF;
                 RETURN NEW;
               END
               $$ LANGUAGE plpgsql""",
            [segment.pk, customer.pk, times, seconds],
        )
        cursor.execute(
            "CREATE TRIGGER slow_entry BEFORE INSERT ON segments_segmentmembership "
            "FOR EACH ROW EXECUTE FUNCTION slow_entry()"
        )
    try:
        yield SlowEntry()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS slow_entry ON segments_segmentmembership")
            cursor.execute("DROP FUNCTION IF EXISTS slow_entry()")
            cursor.execute("DROP SEQUENCE IF EXISTS slow_entry_seen")


# --- a refresh that swaps every member, and the pool child running it killed -------------------

PEOPLE = 30


def deliveries(log: str, task: str, task_id: str) -> int:
    return log.count(f"Task {task}[{task_id}] received")


def comes_back(worker: CeleryWorker, task: str, task_id: str, killed: float, delivery: int = 2) -> float:
    """Seconds from the kill until the worker received the message again (its `delivery`th time)."""
    wait_until(
        lambda: deliveries(worker.output(), task, task_id) == delivery,
        60,
        "the message to come back",
        worker,
    )
    return time.monotonic() - killed


@dataclass
class Moving:
    """UK (30 British members) refreshed; then everyone moved country, so the next refresh swaps them."""

    uk: Segment
    british: set[str]
    french: list[Customer]
    first_refresh: datetime

    @property
    def slowest(self) -> Customer:
        """The refresh enters the French in id order: entering the last one sleeps (slow_entry)."""
        return self.french[-1]


def everyone_moves(worker: CeleryWorker) -> Moving:
    british = [CustomerFactory(external_id=f"gb{i}", country="GB") for i in range(PEOPLE)]
    french = [CustomerFactory(external_id=f"fr{i}", country="FR") for i in range(PEOPLE)]
    uk = Segment.objects.create(name="UK", rules={"field": "customer.country", "op": "eq", "value": "GB"})
    refresh.delay(uk.pk)
    wait_until(
        lambda: Segment.objects.get(pk=uk.pk).refreshed_at is not None, 60, "the first refresh", worker
    )
    assert members(uk) == {c.external_id for c in british}
    assert SegmentMembership.objects.filter(segment=uk).count() == PEOPLE
    Customer.objects.filter(pk__in=[c.pk for c in british]).update(country="FR")
    Customer.objects.filter(pk__in=[c.pk for c in french]).update(country="GB")
    return Moving(
        uk=uk,
        british={c.external_id for c in british},
        french=french,
        first_refresh=Segment.objects.get(pk=uk.pk).refreshed_at,
    )


def kill_the_sleeping_refresh(
    worker: CeleryWorker, segment: Segment, *, not_backends: frozenset[int] = frozenset()
) -> tuple[int, int, float]:
    """SIGKILL the pool child whose refresh of `segment` sleeps inside its INSERT: (child, backend, when).

    `not_backends`: sessions of children killed before, which may still sleep there.
    """

    def asleep() -> int | None:
        backend = sleeping_refresh(segment)
        return backend if backend not in not_backends else None

    backend = wait_until(asleep, 60, "the refresh to sleep inside its INSERT", worker)
    child = pool_child_of(worker, backend)
    assert child is not None, f"no pool child of {worker.process.pid} is connected to backend {backend}"
    process = psutil.Process(child)
    worker.kill_pool_child(child)
    killed = time.monotonic()
    wait_until(lambda: dead(process), 10, "the child to die")
    return child, backend, killed
