"""Launching a campaign and writing its send ledger.

Launch itself is quick and runs in the request: it validates, moves the campaign's status and
creates the run. The audience is computed later, when the run is due, by a task: segments
minus exclusions minus erased and soft-deleted customers, read in keyset pages; each page gets
its arm (global holdout, control, variant), its consent, suppression, frequency-cap and
quiet-hours decisions, and is written to the ledger with one INSERT ... SELECT FROM unnest(...)
that skips rows already there. A writer killed half-way is simply run again: the decisions are
deterministic and the unique key keeps the rows it already wrote.

The ledger writer is in `ledger`, the writing of due runs in `runs`; their names are re-exported
here, where callers have always imported them from.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns import schedule
from campaigns.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    Channel,
    ScheduleKind,
    TriggerKind,
)
from campaigns.services.ledger import (
    ONE_OFF_KEY,
    AudienceRow,
    LedgerEntry,
    LedgerWriter,
    _channel_list,
    _to_rows,
    audience_rows,
    insert_sends,
    variant_due,
)
from campaigns.services.lifecycle import TransitionError, move
from campaigns.services.runs import (
    PAGE_SIZE,
    open_due_occurrences,
    write_run_ledger,
    write_trigger_ledgers,
)
from customers.models import EventType

__all__ = [
    "MAX_VARIANTS",
    "ONE_OFF_KEY",
    "PAGE_SIZE",
    "AudienceRow",
    "LaunchError",
    "LedgerEntry",
    "LedgerWriter",
    "_channel_list",
    "_to_rows",
    "audience_rows",
    "insert_sends",
    "launch_campaign",
    "launch_problems",
    "open_due_occurrences",
    "variant_due",
    "write_run_ledger",
    "write_trigger_ledgers",
]

MAX_VARIANTS = 8


class LaunchError(ValueError):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


def launch_problems(campaign: Campaign) -> dict[str, list[str]]:
    """Everything that would stop this campaign from going out, by field, in the marketer's words."""
    problems: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    variants = list(campaign.variants.select_related("recommender"))
    if not variants:
        add("variants", "Add at least one variant with the message.")
    if len(variants) > MAX_VARIANTS:
        add("variants", f"At most {MAX_VARIANTS} variants; this campaign has {len(variants)}.")
    for variant in variants:
        if variant.channel_on(campaign) == Channel.EMAIL:
            if not variant.subject.strip():
                add("variants", f"Variant {variant.name}: the subject is empty.")
            if not (variant.html.strip() or variant.text.strip()):
                add("variants", f"Variant {variant.name}: write an HTML or a text body.")
        elif not (variant.push_title.strip() and variant.push_body.strip()):
            add("variants", f"Variant {variant.name}: a push needs a title and a body.")
        if variant.send_local_time is not None and variant.send_delay_minutes is not None:
            add("variants", f"Variant {variant.name}: choose a local send time or a delay, not both.")
        if variant.recommender is not None and variant.recommender.active_version_id is None:
            add(
                "variants",
                f"Variant {variant.name}: the recommender {variant.recommender.name} has no active model "
                "yet; train it or choose another.",
            )
    if (
        any(v.channel_on(campaign) == Channel.EMAIL for v in variants)
        and settings.TRACKING_REQUIRE_HTTPS
        and not settings.SITE_URL.startswith("https://")
    ):
        add(
            "channel",
            "Email needs SITE_URL to be an https address: one-click unsubscribe links (RFC 8058) must be https.",
        )
    kind = campaign.schedule_kind
    if kind != ScheduleKind.TRIGGERED and not campaign.include_segments.exists():
        add("include_segments", "Choose at least one segment to send to.")
    if kind == ScheduleKind.AT and campaign.send_at is None:
        add("send_at", "Choose when to send.")
    if kind == ScheduleKind.LOCAL_TIME and (
        campaign.local_send_date is None or campaign.local_send_time is None
    ):
        add("local_send_time", "Choose the date and the local time to send at.")
    if kind == ScheduleKind.RECURRING:
        try:
            schedule.next_occurrence(campaign.cron, timezone.now(), schedule.zone(campaign.schedule_timezone))
        except schedule.CronError as exc:
            add("cron", str(exc))
    if kind == ScheduleKind.TRIGGERED:
        if campaign.trigger_kind == TriggerKind.EVENT:
            if campaign.trigger_event_type not in EventType.values:
                add("trigger_event_type", f"Choose one of {', '.join(EventType.values)}.")
        elif campaign.trigger_kind == TriggerKind.SEGMENT_ENTRY:
            if campaign.trigger_segment_id is None:
                add("trigger_segment", "Choose the segment whose new members get the message.")
        elif campaign.trigger_kind != TriggerKind.POINTS_EXPIRING:
            add("trigger_kind", "Choose what triggers the campaign.")
    if campaign.cap_messages is not None and campaign.cap_period_hours == 0:
        add("cap_period_hours", "A frequency cap needs a period of at least one hour.")
    from experiments.services.design import experiment_problems

    for field, messages in experiment_problems(campaign=campaign, variants=variants).items():
        for message in messages:
            add(field, message)
    return problems


@transaction.atomic
def launch_campaign(*, campaign: Campaign) -> Campaign:
    """Arm a draft: send now, schedule a time, or start listening for triggers."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status != CampaignStatus.DRAFT:
        raise TransitionError(f"Only a draft can be launched; this campaign is {campaign.status}.")
    problems = launch_problems(campaign)
    if problems:
        raise LaunchError(problems)
    now = timezone.now()
    kind = campaign.schedule_kind
    extra = {"launched_at": now}
    from experiments.services.design import start_experiment

    start_experiment(campaign=campaign)
    if kind == ScheduleKind.NOW:
        run = CampaignRun.objects.create(campaign=campaign, key=ONE_OFF_KEY, scheduled_for=now)
        campaign = move(campaign=campaign, to=CampaignStatus.SENDING, extra=extra)
        transaction.on_commit(lambda: _enqueue_prepare(run.pk))
        return campaign
    if kind == ScheduleKind.AT:
        CampaignRun.objects.create(campaign=campaign, key=ONE_OFF_KEY, scheduled_for=campaign.send_at)
    elif kind == ScheduleKind.LOCAL_TIME:
        # A variant with its own local time may go out earlier than the campaign's time: the
        # ledger is written when the earliest of them arrives anywhere.
        clocks = [campaign.local_send_time] + [
            v.send_local_time for v in campaign.variants.all() if v.send_local_time is not None
        ]
        first = min(schedule.earliest_local_moment(campaign.local_send_date, c) for c in clocks)
        CampaignRun.objects.create(campaign=campaign, key=ONE_OFF_KEY, scheduled_for=first)
    elif kind == ScheduleKind.RECURRING:
        extra["next_run_at"] = schedule.next_occurrence(
            campaign.cron, now, schedule.zone(campaign.schedule_timezone)
        )
    elif kind == ScheduleKind.TRIGGERED:
        extra["trigger_armed_at"] = now
    campaign = move(campaign=campaign, to=CampaignStatus.SCHEDULED, extra=extra)
    if kind in (ScheduleKind.AT, ScheduleKind.LOCAL_TIME):
        run = campaign.runs.get(key=ONE_OFF_KEY)
        if run.scheduled_for <= now:
            transaction.on_commit(lambda: _enqueue_prepare(run.pk))
    return campaign


def _enqueue_prepare(run_id: int) -> None:
    from campaigns.tasks import prepare_run

    prepare_run.delay(run_id)
