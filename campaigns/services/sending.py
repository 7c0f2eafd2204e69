"""Sending: claim a chunk of the ledger, check, render, deliver over one connection, record.

The ledger is the only coordination between workers. A worker takes a chunk with
`UPDATE ... SET state='sending', lease ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`,
so two workers never hold the same row; it records every row's outcome with one UPDATE that
only touches rows it still leases. A worker that dies leaves rows whose lease expires; the
reconciler (run by the dispatcher every minute) puts them back in the queue and counts the
kill, and after three kills the rows fail with the reason instead of killing more workers.
A message in flight at a crash can reach the provider twice (same Message-ID, so receivers
can drop it); a message is never lost and never recorded as sent twice.

Claiming and recording are in `claims`, one chunk's sending in `chunks`; this module runs the
worker loop, the reconciler and the dispatcher, and re-exports the names callers import from it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from campaigns.models import (
    CLAIMABLE_STATES,
    Campaign,
    CampaignRun,
    CampaignStatus,
    RunState,
    Send,
    SendState,
)
from campaigns.services.chunks import CONSECUTIVE_CONNECTION_FAILURES, ChunkSender, store_links
from campaigns.services.claims import (
    Claimed,
    Result,
    _setting,
    claim_chunk,
    record_results,
    renew_lease,
    result_from_outcome,
    retry_delay,
    worker_identity,
)
from campaigns.services.lifecycle import SENDABLE, TransitionError, move

__all__ = [
    "CONSECUTIVE_CONNECTION_FAILURES",
    "ChunkSender",
    "Claimed",
    "Result",
    "campaigns_needing_senders",
    "claim_chunk",
    "dispatch_due",
    "enqueue_senders",
    "finish_if_done",
    "reclaim_expired_leases",
    "record_results",
    "renew_lease",
    "result_from_outcome",
    "retry_delay",
    "rows_in_states",
    "send_campaign_chunks",
    "send_claimed",
    "store_links",
    "worker_identity",
]


def _beat(campaign_id: int) -> str | None:
    """Mark that a sender is alive for the campaign and read its status, in one statement."""
    now = timezone.now()
    updated = Campaign.objects.filter(pk=campaign_id).update(heartbeat_at=now)
    if not updated:
        return None
    return Campaign.objects.filter(pk=campaign_id).values_list("status", flat=True).first()


def send_campaign_chunks(*, campaign_id: int, budget_seconds: float | None = None) -> dict[str, int]:
    """Send chunks until nothing is due, the campaign stops being sendable, or the budget is spent.

    Returns counts by resulting state plus `more` = 1 when it stopped on the budget with work left
    (the task then continues in a fresh task rather than holding one message for hours).
    """
    owner = worker_identity()
    size = _setting("CAMPAIGN_CHUNK_SIZE", 200)
    lease = _setting("CAMPAIGN_LEASE_SECONDS", 120)
    budget = budget_seconds if budget_seconds is not None else _setting("CAMPAIGN_TASK_BUDGET_SECONDS", 55)
    deadline = time.monotonic() + budget
    totals: dict[str, int] = {}
    while True:
        status = _beat(campaign_id)
        if status not in SENDABLE:
            return totals
        claimed = claim_chunk(campaign_id=campaign_id, owner=owner, size=size, lease_seconds=lease)
        if not claimed:
            Campaign.objects.filter(pk=campaign_id).update(heartbeat_at=None)
            finish_if_done(campaign_id=campaign_id)
            return totals
        campaign = Campaign.objects.get(pk=campaign_id)
        for state, count in send_claimed(campaign, owner, claimed).items():
            totals[state] = totals.get(state, 0) + count
        if time.monotonic() > deadline:
            totals["more"] = 1
            return totals


def send_claimed(campaign: Campaign, owner: str, claimed: list[Claimed]) -> dict[str, int]:
    """Send a claimed chunk, split by the channel each row goes out on (one sender per channel)."""
    by_channel: dict[str, list[Claimed]] = {}
    for row in claimed:
        by_channel.setdefault(row.channel or campaign.channel, []).append(row)
    totals: dict[str, int] = {}
    for channel, rows in by_channel.items():
        for state, count in ChunkSender(campaign, owner, channel).send(rows).items():
            totals[state] = totals.get(state, 0) + count
    return totals


def finish_if_done(*, campaign_id: int) -> bool:
    """Close runs with nothing left to send; a one-off whose runs are all closed is sent."""
    now = timezone.now()
    open_rows = Send.objects.filter(run=OuterRef("pk"), state__in=[*CLAIMABLE_STATES, SendState.SENDING])
    CampaignRun.objects.filter(campaign_id=campaign_id, state=RunState.READY).exclude(
        Exists(open_rows)
    ).update(state=RunState.DONE, finished_at=now)
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.is_ongoing or campaign.status != CampaignStatus.SENDING:
        return False
    if CampaignRun.objects.filter(
        campaign_id=campaign_id, state__in=[RunState.PENDING, RunState.WRITING, RunState.READY]
    ).exists():
        return False
    try:
        move(campaign=campaign, to=CampaignStatus.SENT, extra={"finished_at": now})
    except TransitionError:
        return False
    return True


def reclaim_expired_leases() -> dict[str, int]:
    """Rows whose worker died go back to the queue (at its end); the third loss fails them."""
    now = timezone.now()
    kill_limit = _setting("CAMPAIGN_KILL_LIMIT", 3)
    table = Send._meta.db_table
    if connection.vendor == "postgresql":
        sql = f"""
            UPDATE {table}
               SET kills = kills + 1,
                   state = CASE WHEN kills + 1 >= %s THEN 'failed' ELSE 'queued' END,
                   reason = CASE WHEN kills + 1 >= %s
                                 THEN 'its chunk killed the sending worker ' || (kills + 1) || ' times'
                                 ELSE 'worker lost mid-chunk; queued again' END,
                   not_before = %s, lease_owner = '', lease_expires_at = NULL, updated_at = %s
             WHERE state = 'sending' AND lease_expires_at < %s
            RETURNING state
        """  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, [kill_limit, kill_limit, now, now, now])
            states = [row[0] for row in cursor.fetchall()]
        return {"requeued": states.count("queued"), "failed": states.count("failed")}
    expired = list(Send.objects.filter(state=SendState.SENDING, lease_expires_at__lt=now))
    counts = {"requeued": 0, "failed": 0}
    for send in expired:
        kills = send.kills + 1
        failed = kills >= kill_limit
        Send.objects.filter(pk=send.pk).update(
            kills=kills,
            state=SendState.FAILED if failed else SendState.QUEUED,
            reason=f"its chunk killed the sending worker {kills} times"
            if failed
            else "worker lost mid-chunk; queued again",
            not_before=now,
            lease_owner="",
            lease_expires_at=None,
        )
        counts["failed" if failed else "requeued"] += 1
    return counts


def enqueue_senders(*, campaign_id: int, parallel: int | None = None) -> int:
    """Start senders for a campaign; extra ones find nothing to claim and stop at once."""
    from campaigns.tasks import send_batch

    count = parallel or _setting("CAMPAIGN_SEND_PARALLELISM", 1)
    Campaign.objects.filter(pk=campaign_id).update(heartbeat_at=timezone.now())
    for _ in range(count):
        send_batch.delay(campaign_id)
    return count


def campaigns_needing_senders(*, now: datetime) -> list[int]:
    """Sendable campaigns with due rows and no sender heard from recently (its task was lost or ended)."""
    stale = now - timedelta(seconds=_setting("CAMPAIGN_SENDER_STALE_SECONDS", 90))
    due_rows = Send.objects.filter(campaign=OuterRef("pk"), state__in=CLAIMABLE_STATES, not_before__lte=now)
    return list(
        Campaign.objects.filter(status__in=SENDABLE)
        .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale))
        .filter(Exists(due_rows))
        .values_list("pk", flat=True)
    )


class _AdvisoryLock:
    """A PostgreSQL session lock so two beats (or a slow and a new dispatcher) never overlap."""

    KEY = 0x5EAC_0001

    def __enter__(self) -> bool:
        if connection.vendor != "postgresql":
            return True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.KEY])
            self.held = bool(cursor.fetchone()[0])
        return self.held

    def __exit__(self, *exc_info) -> None:
        if connection.vendor == "postgresql" and getattr(self, "held", False):
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [self.KEY])


def dispatch_due() -> dict[str, int]:
    """The minute job: reclaim dead leases, start due runs, wake senders, close finished work."""
    from campaigns.services.runs import open_due_occurrences
    from campaigns.tasks import prepare_run, write_trigger_ledgers

    with _AdvisoryLock() as held:
        if not held:
            return {"skipped": 1}
        now = timezone.now()
        report = reclaim_expired_leases()
        report["occurrences"] = len(open_due_occurrences(now=now))
        due_runs = list(
            CampaignRun.objects.filter(
                trigger_customer__isnull=True,
                scheduled_for__lte=now,
                campaign__status__in=SENDABLE,
            )
            .filter(Q(state=RunState.PENDING) | Q(state=RunState.WRITING, lease_expires_at__lt=now))
            .values_list("pk", flat=True)
        )
        for run_id in due_runs:
            prepare_run.delay(run_id)
        report["runs_started"] = len(due_runs)
        if (
            CampaignRun.objects.filter(trigger_customer__isnull=False)
            .filter(Q(state=RunState.PENDING) | Q(state=RunState.WRITING, lease_expires_at__lt=now))
            .exists()
        ):
            write_trigger_ledgers.delay()
        woken = campaigns_needing_senders(now=now)
        for campaign_id in woken:
            enqueue_senders(campaign_id=campaign_id)
        report["senders_started"] = len(woken)
        finished = 0
        with_open_runs = Campaign.objects.filter(status__in=SENDABLE, runs__state=RunState.READY).distinct()
        for campaign_id in with_open_runs.values_list("pk", flat=True):
            finished += finish_if_done(campaign_id=campaign_id)
        report["finished"] = finished
        return report


def rows_in_states(campaign_id: int, states: Iterable[str]) -> int:
    return Send.objects.filter(campaign_id=campaign_id, state__in=list(states)).count()
