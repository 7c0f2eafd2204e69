# ruff: noqa: S608 - the SQL below interpolates only constants (table names, fixed join clauses).
"""The reconciler: full refreshes whose worker died (left `running`) or whose task was lost (left
`queued`), found by the `segments.reconcile` beat task and enqueued again (see `reconcile_refreshes`)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from segments.models import Segment
from segments.services import LOCK_NAMESPACE, _postgres

logger = logging.getLogger(__name__)

INTERRUPTED = "refresh interrupted"
# Between setting `running` and taking the segment's lock a refresh runs one statement; a segment
# `running` for longer with its lock free has no refresh behind it.
RUNNING_GRACE = timedelta(seconds=60)
# A refresh queued this long ago and still not started lost its task (a Redis restart, a purge).
QUEUED_GRACE = timedelta(minutes=10)
# Without advisory locks (the embedded SQLite default) only the task's time limit tells.
SQLITE_RUNNING_GRACE = timedelta(seconds=1800)


def _nobody_refreshing(cursor, segment_id: int) -> bool:
    """True when no transaction holds the segment's refresh lock (taken and kept to our commit)."""
    cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, segment_id])
    return bool(cursor.fetchone()[0])


def reconcile_refreshes(
    *,
    now: datetime | None = None,
    running_grace: timedelta | None = None,
    queued_grace: timedelta | None = None,
) -> list[int]:
    """Segments whose full refresh must be enqueued again; notes each one's state and reason.

    A refresh killed mid-way rolled back whole (the membership is as before) but left the state
    `running`. If nothing holds the segment's lock, the refresh is dead: the segment goes back to
    `queued` with the reason, to be refreshed again; interrupted a second time in a row it is
    `failed` with the reason (the hourly full refresh still tries it), so a refresh that kills
    its worker does not do so every few minutes. A `queued` segment whose task was lost is
    enqueued again.
    """
    now = now or timezone.now()
    if running_grace is None:
        seconds = getattr(settings, "SEGMENTS_RUNNING_GRACE_SECONDS", None)
        running_grace = (
            timedelta(seconds=seconds)
            if seconds is not None
            else (RUNNING_GRACE if _postgres() else SQLITE_RUNNING_GRACE)
        )
    queued_grace = QUEUED_GRACE if queued_grace is None else queued_grace
    requeue: list[int] = []
    stuck = Segment.objects.filter(refresh_state=Segment.RefreshState.RUNNING).filter(
        Q(refresh_started_at__lte=now - running_grace) | Q(refresh_started_at__isnull=True)
    )
    for segment in stuck.only("pk", "refresh_started_at", "refresh_error"):
        with transaction.atomic(), connection.cursor() as cursor:
            if _postgres() and not _nobody_refreshing(cursor, segment.pk):
                continue  # a refresh is alive (or waiting for its turn)
            started = (
                f"{segment.refresh_started_at:%Y-%m-%d %H:%M:%S} UTC" if segment.refresh_started_at else "?"
            )
            reason = (
                f"{INTERRUPTED}: the refresh started {started} stopped before it committed "
                "(worker killed or restarted); the previous membership is unchanged"
            )
            again = segment.refresh_error.startswith(INTERRUPTED)
            changes = (
                {
                    "refresh_state": Segment.RefreshState.FAILED,
                    "refresh_error": f"{reason}; interrupted twice in a row, left to the hourly full refresh",
                }
                if again
                else {
                    "refresh_state": Segment.RefreshState.QUEUED,
                    "refresh_queued_at": now,
                    "refresh_error": f"{reason}; queued again",
                }
            )
            moved = Segment.objects.filter(
                pk=segment.pk,
                refresh_state=Segment.RefreshState.RUNNING,
                refresh_started_at=segment.refresh_started_at,
            ).update(**changes)
        if moved:
            logger.warning("segment %s: %s", segment.pk, changes["refresh_error"])
            if not again:
                requeue.append(segment.pk)
    lost = Segment.objects.filter(refresh_state=Segment.RefreshState.QUEUED).filter(
        Q(refresh_queued_at__lte=now - queued_grace) | Q(refresh_queued_at__isnull=True)
    )
    lost_ids = list(lost.values_list("pk", flat=True))
    Segment.objects.filter(pk__in=lost_ids, refresh_state=Segment.RefreshState.QUEUED).update(
        refresh_queued_at=now
    )
    return sorted({*requeue, *lost_ids})
