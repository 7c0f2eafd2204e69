"""The ledger writer: one page of an audience in, decided ledger rows out.

Each page of customers gets its arm (global holdout, control, variant), its consent, suppression,
frequency-cap and quiet-hours decisions, and is written to the ledger with one
INSERT ... SELECT FROM unnest(...) that skips rows already there. The decisions are deterministic,
so a page written twice writes nothing new. Which pages to write, and when, is `runs`' business.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet

from campaigns import schedule
from campaigns.models import (
    Arm,
    Campaign,
    CampaignRun,
    Channel,
    ScheduleKind,
    Send,
    SendState,
    Variant,
)
from campaigns.services import eligibility
from campaigns.services.assignment import CONTROL, HOLDOUT, ROLLOUT, ArmDesign, assign_arm
from customers.models import Customer, PushSubscription

ONE_OFF_KEY = "once"


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
