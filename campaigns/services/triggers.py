"""Triggered campaigns: an event, a segment entry or soon-expiring points becomes a run.

Each trigger is a run keyed by what caused it (`event:<id>`, `segment_entry:<membership id>`,
`points_expiring:<membership>:<expiry date>`), created with INSERT ... ON CONFLICT DO NOTHING:
a re-delivered event, a scan that runs twice or two beats create the run once, so the
customer is messaged once. New events and segment entries are read by id cursor; the ingest
service may also call `fire_event_triggers` directly for lower latency (the cursor scan then
finds the runs already there). Delays are the run's `scheduled_for`: its ledger row waits as
`deferred` with `not_before`, never as a Celery countdown.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from campaigns.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    ProcessingCursor,
    ScheduleKind,
    TriggerKind,
)
from customers.models import Event, EventType
from loyalty.models import PointsLot
from segments.models import SegmentMembership

BATCH = 5000
ARMED = (CampaignStatus.SCHEDULED, CampaignStatus.PAUSED)


def armed(kind: str) -> list[Campaign]:
    return list(
        Campaign.objects.filter(schedule_kind=ScheduleKind.TRIGGERED, trigger_kind=kind, status__in=ARMED)
    )


def _create_runs(runs: list[CampaignRun]) -> int:
    """Insert runs, keeping those that exist (their keys are the idempotency); returns runs offered."""
    if runs:
        CampaignRun.objects.bulk_create(runs, ignore_conflicts=True, batch_size=1000)
    return len(runs)


def runs_for_events(
    events: Iterable[tuple[int, int, str, str, object]], campaigns: list[Campaign]
) -> list[CampaignRun]:
    """(event id, customer id, type, name, occurred_at) rows -> the runs they start."""
    runs = []
    for event_id, customer_id, event_type, name, occurred_at in events:
        for campaign in campaigns:
            if campaign.trigger_event_type != event_type:
                continue
            if (
                event_type == EventType.CUSTOM
                and campaign.trigger_event_name
                and campaign.trigger_event_name != name
            ):
                continue
            if campaign.trigger_armed_at and occurred_at < campaign.trigger_armed_at:
                continue
            runs.append(
                CampaignRun(
                    campaign=campaign,
                    key=f"event:{event_id}",
                    trigger_customer_id=customer_id,
                    scheduled_for=occurred_at + timedelta(minutes=campaign.trigger_delay_minutes),
                )
            )
    return runs


def fire_event_triggers(*, event_ids: Iterable[int]) -> int:
    """For the ingest path: start the runs these events trigger now (idempotent)."""
    campaigns = armed(TriggerKind.EVENT)
    if not campaigns:
        return 0
    rows = Event.objects.filter(pk__in=list(event_ids)).values_list(
        "id", "customer_id", "type", "name", "occurred_at"
    )
    return _create_runs(runs_for_events(rows, campaigns))


def _advance(name: str, reader, make_runs) -> int:
    """Read rows after the cursor in batches, create their runs and move the cursor, atomically."""
    created = 0
    while True:
        with transaction.atomic():
            cursor, _ = ProcessingCursor.objects.select_for_update().get_or_create(name=name)
            rows = list(reader(cursor.last_id)[:BATCH])
            if not rows:
                return created
            created += _create_runs(make_runs(rows))
            cursor.last_id = rows[-1][0]
            cursor.save(update_fields=["last_id", "updated_at"])
        if len(rows) < BATCH:
            return created


def scan_event_triggers() -> int:
    campaigns = armed(TriggerKind.EVENT)
    if not campaigns:
        # Nothing listens: skip ahead so arming later does not replay history.
        _skip_to_end("trigger.events", Event)
        return 0
    types = {c.trigger_event_type for c in campaigns}

    def reader(last_id):
        return (
            Event.objects.filter(pk__gt=last_id)
            .order_by("pk")
            .values_list("id", "customer_id", "type", "name", "occurred_at")
            .filter(type__in=types)
        )

    return _advance("trigger.events", reader, lambda rows: runs_for_events(rows, campaigns))


def scan_segment_entries() -> int:
    campaigns = armed(TriggerKind.SEGMENT_ENTRY)
    if not campaigns:
        _skip_to_end("trigger.segment_entries", SegmentMembership)
        return 0
    by_segment: dict[int, list[Campaign]] = {}
    for campaign in campaigns:
        by_segment.setdefault(campaign.trigger_segment_id, []).append(campaign)

    def reader(last_id):
        return (
            SegmentMembership.objects.filter(pk__gt=last_id, segment_id__in=list(by_segment))
            .order_by("pk")
            .values_list("id", "segment_id", "customer_id", "entered_at")
        )

    def make_runs(rows):
        runs = []
        for membership_id, segment_id, customer_id, entered_at in rows:
            for campaign in by_segment.get(segment_id, []):
                if campaign.trigger_armed_at and entered_at < campaign.trigger_armed_at:
                    continue
                runs.append(
                    CampaignRun(
                        campaign=campaign,
                        key=f"segment_entry:{membership_id}",
                        trigger_customer_id=customer_id,
                        scheduled_for=entered_at + timedelta(minutes=campaign.trigger_delay_minutes),
                    )
                )
        return runs

    return _advance("trigger.segment_entries", reader, make_runs)


def _skip_to_end(name: str, model) -> None:
    last = model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    ProcessingCursor.objects.update_or_create(name=name, defaults={"last_id": last})


def scan_expiring_points() -> int:
    """One run per membership and expiry date with points expiring within the campaign's horizon."""
    now = timezone.now()
    created = 0
    for campaign in armed(TriggerKind.POINTS_EXPIRING):
        horizon = now + timedelta(days=campaign.trigger_points_days)
        lots = (
            PointsLot.objects.filter(remaining__gt=0, expires_at__gt=now, expires_at__lte=horizon)
            .values("membership_id", "membership__customer_id")
            .annotate(first=Min("expires_at"))
        )
        runs = [
            CampaignRun(
                campaign=campaign,
                key=f"points_expiring:{row['membership_id']}:{row['first'].date().isoformat()}",
                trigger_customer_id=row["membership__customer_id"],
                scheduled_for=now + timedelta(minutes=campaign.trigger_delay_minutes),
            )
            for row in lots
        ]
        created += _create_runs(runs)
    return created


def scan_triggers() -> dict[str, int]:
    return {
        "events": scan_event_triggers(),
        "segment_entries": scan_segment_entries(),
        "points_expiring": scan_expiring_points(),
    }
