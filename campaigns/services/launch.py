"""Launching a campaign and writing its send ledger.

Launch itself is quick and runs in the request: it validates, moves the campaign's status and
creates the run. The audience is computed later, when the run is due, by a task: segments
minus exclusions minus erased and soft-deleted customers, read in keyset pages; each page gets
its arm (global holdout, control, variant), its consent, suppression, frequency-cap and
quiet-hours decisions, and is written to the ledger with one INSERT ... SELECT FROM unnest(...)
that skips rows already there. A writer killed half-way is simply run again: the decisions are
deterministic and the unique key keeps the rows it already wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from campaigns import schedule
from campaigns.models import (
    CLAIMABLE_STATES,
    Arm,
    Campaign,
    CampaignRun,
    CampaignStatus,
    Channel,
    RunState,
    ScheduleKind,
    Send,
    SendState,
    TriggerKind,
    Variant,
)
from campaigns.services import eligibility
from campaigns.services.assignment import CONTROL, HOLDOUT, ROLLOUT, ArmDesign, assign_arm
from campaigns.services.lifecycle import TransitionError, move
from customers.models import Customer, EventType, PushSubscription
from segments.selectors import audience

logger = logging.getLogger(__name__)

PAGE_SIZE = 5000
MAX_VARIANTS = 8
ONE_OFF_KEY = "once"


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


# --------------------------------------------------------------------------------------------
# The ledger writer


@dataclass(frozen=True)
class AudienceRow:
    customer_id: int
    email: str
    timezone: str
    consent: str | None
    has_push: bool
    #: Consent per channel when the variants go out on more than one (`consent` is the first's).
    consents: dict[str, str | None] | None = None

    def consent_on(self, channel: str) -> str | None:
        return self.consents[channel] if self.consents is not None else self.consent


@dataclass(frozen=True)
class LedgerEntry:
    """One customer to write into one run, due at `due` (the run's time, a local time, a delay)."""

    run_id: int
    customer: AudienceRow
    due: datetime


def _channel_list(channel: str | Sequence[str]) -> list[str]:
    return [channel] if isinstance(channel, str) else list(dict.fromkeys(channel))


def audience_rows(queryset: QuerySet[Customer], channel: str | Sequence[str]) -> QuerySet:
    """The customer columns the decisions need, annotated set-wise (consent, push subscription).

    `channel` may list several channels (an experiment whose variants differ by channel): each
    gets its consent column.
    """
    channels = _channel_list(channel)
    queryset = queryset.annotate(
        **{f"consent_{name}": eligibility.consent_subquery(name) for name in channels}
    )
    fields = ["id", "email", "timezone", *(f"consent_{name}" for name in channels)]
    if Channel.PUSH in channels:
        queryset = queryset.annotate(
            has_push=Exists(PushSubscription.objects.filter(customer=OuterRef("pk"), active=True))
        )
        fields.append("has_push")
    return queryset.values_list(*fields)


def _to_rows(values: Iterable[tuple], channel: str | Sequence[str]) -> list[AudienceRow]:
    channels = _channel_list(channel)
    push = Channel.PUSH in channels
    rows = []
    for value in values:
        cid, email, tz = value[:3]
        consents = dict(zip(channels, value[3 : 3 + len(channels)], strict=True))
        rows.append(
            AudienceRow(
                cid,
                email or "",
                tz or "",
                consents[channels[0]],
                bool(value[-1]) if push else False,
                consents if len(channels) > 1 else None,
            )
        )
    return rows


class LedgerWriter:
    """Decides and writes ledger rows for one campaign, a page at a time.

    Variants may differ by more than their message: each row goes out on its variant's channel
    (consent, address and frequency cap checked on that channel) and at its variant's send time
    (a local time in the customer's timezone, or a delay after the campaign's time) as a deferred
    row with `not_before`, which the dispatcher picks up when it is due.
    """

    def __init__(self, campaign: Campaign):
        self.campaign = campaign
        self.variants: list[Variant] = list(campaign.variants.order_by("id"))
        from experiments.services.design import ledger_plan

        # An experiment may hold back the rest of the audience (test-then-send) or set the
        # weights of this run (bandit); without one, the variants' own weights split everyone.
        self.plan = ledger_plan(campaign=campaign, variants=self.variants)
        weights = self.plan.weights if self.plan.weights else [v.weight for v in self.variants]
        self.design = ArmDesign.for_campaign(campaign, weights)
        self.variant_channels = [v.channel_on(campaign) for v in self.variants]
        # Rows without a variant (holdout, control) are recorded on the campaign's channel, unless
        # no variant uses it (every variant moved to push): then on the variants' channel.
        self.channel = (
            campaign.channel
            if not self.variant_channels or campaign.channel in self.variant_channels
            else self.variant_channels[0]
        )
        self.by_id = {v.pk: v for v in self.variants}
        # The campaign's channel first: rows with no variant (holdout, control) are recorded on it.
        self.channels = list(dict.fromkeys([self.channel, *self.variant_channels]))
        # Variants on different channels compare like with like only if every customer in the
        # comparison could have received every variant: whoever is unreachable on one of the
        # variants' channels is left out of all arms alike.
        self.mixed = len(set(self.variant_channels)) > 1
        self.tested_channels = list(dict.fromkeys(self.variant_channels)) if self.mixed else [self.channel]

    @property
    def audience_channels(self) -> list[str]:
        return self.channels

    def due_for(self, run: CampaignRun, row: AudienceRow) -> datetime:
        campaign = self.campaign
        if campaign.schedule_kind == ScheduleKind.LOCAL_TIME and run.key == ONE_OFF_KEY:
            tz = schedule.zone(row.timezone, campaign.schedule_timezone or settings.TIME_ZONE)
            return schedule.at_local(campaign.local_send_date, campaign.local_send_time, tz)
        return run.scheduled_for

    def variant_due(self, variant: Variant, due: datetime, row: AudienceRow) -> datetime:
        """When this variant reaches this customer: its own send time, else the campaign's (`due`)."""
        return variant_due(self.campaign, variant, due, row.timezone)

    def _reachable(self, row: AudienceRow, channel: str, suppressed: dict) -> eligibility.Verdict | None:
        return eligibility.consent_verdict(row.consent_on(channel), channel) or eligibility.address_verdict(
            channel=channel, email=row.email, suppressed=suppressed, has_push=row.has_push
        )

    def write(self, entries: Sequence[LedgerEntry], *, now: datetime) -> int:
        if not entries:
            return 0
        customers = [e.customer for e in entries]
        suppressed = (
            eligibility.suppressed_addresses(c.email for c in customers)
            if Channel.EMAIL in self.channels
            else {}
        )
        ids = [c.customer_id for c in customers]
        usage = {
            channel: eligibility.cap_usage(campaign=self.campaign, customer_ids=ids, now=now, channel=channel)
            for channel in self.channels
        }
        rows: dict[str, list[tuple]] = {}
        for entry in entries:
            row = entry.customer
            arm, index = assign_arm(customer_id=row.customer_id, design=self.design)
            variant = self.variants[index] if index is not None else None
            variant_id = variant.pk if variant is not None else None
            channel = self.variant_channels[index] if index is not None else self.channel
            due = entry.due
            verdict = self._reachable(row, channel, suppressed)
            if verdict is None and self.mixed:
                for other in self.tested_channels:
                    refused = self._reachable(row, other, suppressed)
                    if refused is not None:
                        verdict = eligibility.Verdict(
                            SendState.SUPPRESSED,
                            f"not reachable on every channel of the experiment ({refused.reason})",
                        )
                        break
            if verdict is None and arm == HOLDOUT:
                verdict = eligibility.Verdict(SendState.HELD_OUT, "global holdout")
            elif verdict is None and arm == CONTROL:
                verdict = eligibility.Verdict(SendState.HELD_OUT, "control group")
            if index is not None and self.plan.holds_back(row.customer_id):
                # Outside the test sample: no due time until the winner is chosen and released.
                arm, variant_id = ROLLOUT, self.plan.waiting_variant_id
                channel = self.by_id[variant_id].channel_on(self.campaign)
                verdict = verdict or eligibility.Verdict(SendState.DEFERRED, self.plan.waiting_reason, None)
            elif variant is not None:
                due = self.variant_due(variant, due, row)
            verdict = (
                verdict
                or eligibility.cap_verdict(campaign=self.campaign, usage=usage[channel].get(row.customer_id))
                or eligibility.timing_verdict(
                    campaign=self.campaign, due=due, customer_timezone=row.timezone, now=now
                )
            )
            arm_value = {HOLDOUT: Arm.HOLDOUT, CONTROL: Arm.CONTROL, ROLLOUT: Arm.ROLLOUT}.get(
                arm, Arm.VARIANT
            )
            rows.setdefault(channel, []).append(
                (
                    entry.run_id,
                    variant_id,
                    row.customer_id,
                    arm_value,
                    verdict.state,
                    verdict.reason,
                    verdict.not_before,
                )
            )
        return sum(
            insert_sends(campaign_id=self.campaign.pk, channel=channel, rows=channel_rows, now=now)
            for channel, channel_rows in rows.items()
        )


def variant_due(campaign: Campaign, variant: Variant, due: datetime, customer_timezone: str) -> datetime:
    """A variant's own send time for one customer, given the campaign's time for them (`due`).

    A local time is the first moment at or after the campaign's time at which the customer's clock
    shows it; for a campaign sent "in each customer's timezone" it is that time on the campaign's
    date instead. A delay counts from the campaign's time.
    """
    if variant.send_delay_minutes is not None:
        return due + timedelta(minutes=variant.send_delay_minutes)
    if variant.send_local_time is None:
        return due
    tz = schedule.zone(customer_timezone, campaign.schedule_timezone or settings.TIME_ZONE)
    if campaign.schedule_kind == ScheduleKind.LOCAL_TIME and campaign.local_send_date is not None:
        return schedule.at_local(campaign.local_send_date, variant.send_local_time, tz)
    return schedule.next_local(due, variant.send_local_time, tz)


def insert_sends(*, campaign_id: int, channel: str, rows: list[tuple], now: datetime) -> int:
    """Write (run, variant, customer, arm, state, reason, not_before) rows; existing keys are kept.

    PostgreSQL gets one INSERT ... SELECT FROM unnest(arrays) per page (a 5,000-row page is one
    round trip); SQLite, for the demo, gets bulk_create with ignore_conflicts.
    """
    if not rows:
        return 0
    if connection.vendor == "postgresql":
        runs, variants, customers, arms, states, reasons, not_befores = (
            list(col) for col in zip(*rows, strict=True)
        )
        table = Send._meta.db_table
        sql = f"""
            INSERT INTO {table} (run_id, campaign_id, variant_id, customer_id, channel, arm, state, reason,
                                 not_before, lease_owner, attempts, kills, message_id, provider_message_id,
                                 created_at, updated_at)
            SELECT r, %s, v, c, %s, a, s, rs, nb, '', 0, 0, '', '', %s, %s
            FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::varchar[], %s::varchar[],
                        %s::varchar[], %s::timestamptz[]) AS t(r, v, c, a, s, rs, nb)
            ON CONFLICT DO NOTHING
        """  # noqa: S608 - table name from the model, values bound
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                [
                    campaign_id,
                    channel,
                    now,
                    now,
                    runs,
                    variants,
                    customers,
                    arms,
                    states,
                    reasons,
                    not_befores,
                ],
            )
            return cursor.rowcount
    objects = [
        Send(
            run_id=r,
            campaign_id=campaign_id,
            variant_id=v,
            customer_id=c,
            channel=channel,
            arm=a,
            state=s,
            reason=rs,
            not_before=nb,
        )
        for r, v, c, a, s, rs, nb in rows
    ]
    Send.objects.bulk_create(objects, batch_size=1000, ignore_conflicts=True)
    return len(objects)


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


# --------------------------------------------------------------------------------------------
# Runs that start by themselves: recurring occurrences and triggers


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
