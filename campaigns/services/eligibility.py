"""Who may be messaged now, decided for a whole chunk of customers at once.

Used twice for every message: when the ledger is written (so the report shows from the start
who is suppressed, capped or deferred) and again by the worker right before sending (so an
unsubscribe, a bounce, an erasure or another campaign's message between launch and send is
honoured). Each check is one query per chunk, never one per customer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, OuterRef, Subquery

from campaigns import schedule
from campaigns.models import Campaign, CapOverflow, Channel, Send, SendState
from core.hashing import email_digest
from customers.models import ConsentStatus, CustomerConsent, PushSubscription, Suppression


@dataclass(frozen=True)
class Verdict:
    """What to do with one customer's row now: its state, reason and (if deferred) when to retry."""

    state: str
    reason: str = ""
    not_before: datetime | None = None


SEND = Verdict(SendState.QUEUED)


def consent_subquery(channel: str) -> Subquery:
    """Annotation: the customer's current consent status on `channel` (None when never given)."""
    return Subquery(
        CustomerConsent.objects.filter(customer=OuterRef("pk"), channel=channel).values("status")[:1]
    )


def consent_verdict(status: str | None, channel: str) -> Verdict | None:
    if status == ConsentStatus.GRANTED:
        return None
    if status == ConsentStatus.WITHDRAWN:
        return Verdict(SendState.SUPPRESSED, f"{channel} consent withdrawn")
    if status == ConsentStatus.PENDING:
        return Verdict(SendState.SUPPRESSED, f"{channel} consent awaiting confirmation (double opt-in)")
    return Verdict(SendState.SUPPRESSED, f"no {channel} consent on record")


def suppressed_addresses(emails: Iterable[str]) -> dict[str, str]:
    """address -> suppression reason, for the addresses on the email suppression list."""
    by_digest: dict[str, str] = {}
    for email in emails:
        if email:
            by_digest[email_digest(email)] = email
    if not by_digest:
        return {}
    rows = Suppression.objects.filter(channel=Channel.EMAIL, address_hash__in=list(by_digest)).values_list(
        "address_hash", "reason"
    )
    return {by_digest[digest]: reason for digest, reason in rows}


def customers_with_push(customer_ids: Iterable[int]) -> set[int]:
    return set(
        PushSubscription.objects.filter(customer_id__in=list(customer_ids), active=True)
        .values_list("customer_id", flat=True)
        .distinct()
    )


def address_verdict(
    *, channel: str, email: str, suppressed: dict[str, str], has_push: bool
) -> Verdict | None:
    if channel == Channel.EMAIL:
        if not email:
            return Verdict(SendState.SUPPRESSED, "no email address")
        if email in suppressed:
            return Verdict(SendState.SUPPRESSED, f"address on the suppression list ({suppressed[email]})")
    elif not has_push:
        return Verdict(SendState.SUPPRESSED, "no active push subscription")
    return None


@dataclass(frozen=True)
class CapUsage:
    count: int
    oldest: datetime


def cap_usage(
    *,
    campaign: Campaign,
    customer_ids: Iterable[int],
    now: datetime,
    exclude_send_ids: Iterable[int] = (),
    channel: str | None = None,
) -> dict[int, CapUsage]:
    """Messages each customer received on the channel within the cap period (all campaigns).

    `channel` defaults to the campaign's; a variant sent on another channel counts that one's.
    """
    if not campaign.cap_messages:
        return {}
    since = now - timedelta(hours=campaign.cap_period_hours)
    rows = (
        Send.objects.filter(
            customer_id__in=list(customer_ids),
            channel=channel or campaign.channel,
            state=SendState.SENT,
            sent_at__gte=since,
        )
        .exclude(pk__in=list(exclude_send_ids))
        .values("customer_id")
        .annotate(n=Count("id"), oldest=Min("sent_at"))
        .values_list("customer_id", "n", "oldest")
    )
    return {cid: CapUsage(n, oldest) for cid, n, oldest in rows}


def cap_verdict(*, campaign: Campaign, usage: CapUsage | None) -> Verdict | None:
    if not campaign.cap_messages or usage is None or usage.count < campaign.cap_messages:
        return None
    reason = f"frequency cap: {usage.count} messages in {campaign.cap_period_hours} h"
    if campaign.cap_overflow == CapOverflow.DROP:
        return Verdict(SendState.CAPPED, reason)
    # One slot frees up when the oldest counted message leaves the window.
    return Verdict(
        SendState.DEFERRED, reason, usage.oldest + timedelta(hours=campaign.cap_period_hours, seconds=1)
    )


def timing_verdict(*, campaign: Campaign, due: datetime, customer_timezone: str, now: datetime) -> Verdict:
    """Queued now, or deferred to its due time or to the end of the customer's quiet hours."""
    tz = schedule.zone(customer_timezone, campaign.schedule_timezone or settings.TIME_ZONE)
    moment = max(due, now)
    end = schedule.quiet_until(moment, tz, campaign.quiet_hours_start, campaign.quiet_hours_end)
    if end is not None:
        return Verdict(SendState.DEFERRED, f"quiet hours in {tz.key}", end)
    if due > now:
        return Verdict(SendState.DEFERRED, "waiting for its send time", due)
    return Verdict(SendState.QUEUED, "", moment)
