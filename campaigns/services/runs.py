"""Writing the ledger of due runs: one-off runs, recurring occurrences and triggers.

The audience of a run is computed when the run is due, by a task: segments minus exclusions
minus erased and soft-deleted customers, read in keyset pages that `LedgerWriter` decides and
writes. A writer holds the run under a lease; a writer killed half-way is simply run again: the
decisions are deterministic and the unique key keeps the rows it already wrote.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from campaigns import schedule
from campaigns.models import (
    CLAIMABLE_STATES,
    Campaign,
    CampaignRun,
    CampaignStatus,
    RunState,
    ScheduleKind,
    Send,
    SendState,
)
from campaigns.services.ledger import LedgerEntry, LedgerWriter, _to_rows, audience_rows
from campaigns.services.lifecycle import move
from customers.models import Customer
from segments.selectors import audience

logger = logging.getLogger(__name__)

PAGE_SIZE = 5000


def _claim_run(run_id: int, lease: timedelta) -> CampaignRun | None:
    """Take the run for writing unless a live writer holds it (a crashed writer's lease expires)."""
    now = timezone.now()
    claimed = (
        CampaignRun.objects.filter(pk=run_id)
        .filter(
            Q(state=RunState.PENDING, scheduled_for__lte=now)
            | Q(state=RunState.WRITING, lease_expires_at__lt=now)
        )
        .update(state=RunState.WRITING, lease_expires_at=now + lease)
    )
    return CampaignRun.objects.select_related("campaign").get(pk=run_id) if claimed else None


def write_run_ledger(*, run_id: int) -> int:
    """Compute the audience of a one-off run or a recurring occurrence and write its ledger."""
    lease = timedelta(seconds=settings.CAMPAIGN_LEASE_SECONDS * 5)
    run = _claim_run(run_id, lease)
    if run is None:
        return 0
    campaign = run.campaign
    if campaign.status == CampaignStatus.CANCELLED:
        CampaignRun.objects.filter(pk=run.pk).update(state=RunState.CANCELLED, finished_at=timezone.now())
        return 0
    if campaign.status == CampaignStatus.SCHEDULED and not campaign.is_ongoing:
        campaign = move(campaign=campaign, to=CampaignStatus.SENDING)  # its time has come
    writer = LedgerWriter(campaign)
    base = audience(include=campaign.include_segments.all(), exclude=campaign.exclude_segments.all())
    written = 0
    last_id = 0
    senders_started = False
    while True:
        page = list(
            audience_rows(base.filter(pk__gt=last_id).order_by("pk"), writer.audience_channels)[:PAGE_SIZE]
        )
        if not page:
            break
        last_id = page[-1][0]
        now = timezone.now()
        entries = [
            LedgerEntry(run.pk, row, writer.due_for(run, row))
            for row in _to_rows(page, writer.audience_channels)
        ]
        written += writer.write(entries, now=now)
        CampaignRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() + lease)
        status = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
        if status == CampaignStatus.CANCELLED:
            break
        if not senders_started and status == CampaignStatus.SENDING and len(page) == PAGE_SIZE:
            # A large audience: start sending the first pages while the rest is written. The run
            # stays WRITING, so nothing can call it done before its last page is in.
            from campaigns.services.sending import enqueue_senders

            transaction.on_commit(lambda: enqueue_senders(campaign_id=campaign.pk))
            senders_started = True
    return _finish_writing(run)


def _finish_writing(run: CampaignRun) -> int:
    now = timezone.now()
    size = Send.objects.filter(run=run).count()
    with transaction.atomic():
        CampaignRun.objects.filter(pk=run.pk, state=RunState.WRITING).update(
            state=RunState.READY, audience_size=size, ledger_written_at=now, lease_expires_at=None
        )
        campaign = Campaign.objects.select_for_update().get(pk=run.campaign_id)
        if campaign.status == CampaignStatus.CANCELLED:
            Send.objects.filter(run=run, state__in=CLAIMABLE_STATES).update(
                state=SendState.FAILED, reason="campaign cancelled", updated_at=now
            )
        elif campaign.status == CampaignStatus.SCHEDULED and not campaign.is_ongoing:
            move(campaign=campaign, to=CampaignStatus.SENDING)
        from campaigns.services.sending import enqueue_senders

        transaction.on_commit(lambda: enqueue_senders(campaign_id=campaign.pk))
    logger.info("campaign %s run %s: ledger of %s rows", run.campaign_id, run.pk, size)
    return size


def open_due_occurrences(*, now: datetime) -> list[int]:
    """Create the run of every recurring occurrence that is due; returns the new run ids.

    The run key is the occurrence's time, so two beats (or a retried dispatcher) create it once.
    """
    created: list[int] = []
    due = Campaign.objects.filter(
        schedule_kind=ScheduleKind.RECURRING, status=CampaignStatus.SCHEDULED, next_run_at__lte=now
    ).values_list("pk", flat=True)
    for campaign_id in due:
        with transaction.atomic():
            campaign = (
                Campaign.objects.select_for_update(skip_locked=True)
                .filter(pk=campaign_id, status=CampaignStatus.SCHEDULED, next_run_at__lte=now)
                .first()
            )
            if campaign is None:
                continue
            occurrence = campaign.next_run_at
            run, made = CampaignRun.objects.get_or_create(
                campaign=campaign,
                key=f"occurrence:{occurrence.isoformat()}",
                defaults={"scheduled_for": occurrence},
            )
            tz = schedule.zone(campaign.schedule_timezone)
            Campaign.objects.filter(pk=campaign.pk).update(
                next_run_at=schedule.next_occurrence(campaign.cron, max(now, occurrence), tz)
            )
            if made:
                created.append(run.pk)
    return created


def write_trigger_ledgers(*, limit: int = 2000) -> int:
    """Write the one-customer ledgers of pending trigger runs, batched per campaign."""
    now = timezone.now()
    lease = timedelta(seconds=settings.CAMPAIGN_LEASE_SECONDS * 5)
    with transaction.atomic():
        ids = list(
            CampaignRun.objects.select_for_update(skip_locked=True)
            .filter(trigger_customer__isnull=False)
            .filter(Q(state=RunState.PENDING) | Q(state=RunState.WRITING, lease_expires_at__lt=now))
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
        CampaignRun.objects.filter(pk__in=ids).update(state=RunState.WRITING, lease_expires_at=now + lease)
    if not ids:
        return 0
    runs = list(CampaignRun.objects.filter(pk__in=ids).select_related("campaign"))
    by_campaign: dict[int, list[CampaignRun]] = {}
    for run in runs:
        by_campaign.setdefault(run.campaign_id, []).append(run)
    written = 0
    for campaign_runs in by_campaign.values():
        campaign = campaign_runs[0].campaign
        if campaign.status == CampaignStatus.CANCELLED:
            CampaignRun.objects.filter(pk__in=[r.pk for r in campaign_runs]).update(
                state=RunState.CANCELLED, finished_at=now
            )
            continue
        writer = LedgerWriter(campaign)
        customer_ids = {r.trigger_customer_id for r in campaign_runs}
        base = Customer.objects.filter(pk__in=customer_ids)
        if campaign.include_segments.exists():
            base = base.filter(
                pk__in=audience(
                    include=campaign.include_segments.all(), exclude=campaign.exclude_segments.all()
                )
            )
        elif campaign.exclude_segments.exists():
            base = base.exclude(pk__in=audience(include=campaign.exclude_segments.all()))
        rows = {
            row.customer_id: row
            for row in _to_rows(audience_rows(base, writer.audience_channels), writer.audience_channels)
        }
        entries = [
            LedgerEntry(run.pk, rows[run.trigger_customer_id], run.scheduled_for)
            for run in campaign_runs
            if run.trigger_customer_id in rows
        ]
        written += writer.write(entries, now=now)
        for size in (0, 1):
            CampaignRun.objects.filter(
                pk__in=[r.pk for r in campaign_runs if (r.trigger_customer_id in rows) == bool(size)]
            ).update(state=RunState.READY, ledger_written_at=now, lease_expires_at=None, audience_size=size)
    return written
