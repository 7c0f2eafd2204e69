"""The campaign report: what the ledger and the tracking events say, per variant and over time.

Counts are of sends (unique), not of events: a customer who opens five times is one open. Opens
are split into human and machine (privacy proxies, scanners); the rates use human opens.
Conversions and revenue are last-touch attributed (see tracking/conversions.py); revenue is the
order's current total, so later returns and cancellations show up.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDay, TruncHour

from campaigns.models import Campaign, Channel, Conversion, Send, SendState, TrackingEvent, TrackingKind

BUCKETS = {"hour": TruncHour, "day": TruncDay}
TOTAL = "total"


def _empty() -> dict:
    return {
        "audience": 0,
        "queued": 0,
        "sending": 0,
        "deferred": 0,
        "sent": 0,
        "failed": 0,
        "suppressed": 0,
        "capped": 0,
        "held_out": 0,
        "delivered": 0,
        "opens_human": 0,
        "opens_machine": 0,
        "clicks": 0,
        "clicks_machine": 0,
        "unsubscribes": 0,
        "bounces": 0,
        "complaints": 0,
        "conversions": 0,
        "revenue": Decimal("0"),
        "hard_bounces": 0,
    }


def _rates(row: dict) -> dict:
    delivered = row["delivered"] or 0

    def rate(n: int) -> float | None:
        return round(n / delivered, 6) if delivered else None

    return {
        "open_rate": rate(row["opens_human"]),
        "click_rate": rate(row["clicks"]),
        "unsubscribe_rate": rate(row["unsubscribes"]),
        "complaint_rate": rate(row["complaints"]),
        "conversion_rate": rate(row["conversions"]),
        "revenue_per_recipient": str((row["revenue"] / delivered).quantize(Decimal("0.0001")))
        if delivered
        else None,
    }


def _no_push_opens(row: dict) -> dict:
    """Push opens are not tracked: a push row has no open rate (null), rather than a false 0 %."""
    if row.get("channel") == Channel.PUSH:
        row["open_rate"] = None
    return row


def campaign_report(*, campaign: Campaign, bucket: str = "day") -> dict:
    """Totals, per-variant rows and time buckets, in a fixed number of queries."""
    variant_list = list(campaign.variants.all())
    names = {v.pk: v.name for v in variant_list}
    channel_of = {v.name: v.channel_on(campaign) for v in variant_list}
    rows: dict[str, dict] = defaultdict(_empty)

    def key(variant_id) -> str:
        return names.get(variant_id, "held out") if variant_id is not None else "held out"

    for variant_id, state, n in (
        Send.objects.filter(campaign=campaign).values_list("variant_id", "state").annotate(n=Count("id"))
    ):
        for name in (key(variant_id), TOTAL):
            rows[name][state] = rows[name].get(state, 0) + n
            rows[name]["audience"] += n

    engaged = (
        TrackingEvent.objects.filter(campaign=campaign)
        .values_list("variant_id", "kind", "machine")
        .annotate(sends=Count("send_id", distinct=True))
    )
    bounced_hard = dict(
        TrackingEvent.objects.filter(campaign=campaign, kind=TrackingKind.BOUNCE, detail__startswith="hard")
        .values_list("variant_id")
        .annotate(n=Count("send_id", distinct=True))
    )
    fields = {
        (TrackingKind.OPEN, False): "opens_human",
        (TrackingKind.OPEN, True): "opens_machine",
        (TrackingKind.CLICK, False): "clicks",
        (TrackingKind.CLICK, True): "clicks_machine",
        (TrackingKind.UNSUBSCRIBE, False): "unsubscribes",
        (TrackingKind.BOUNCE, False): "bounces",
        (TrackingKind.COMPLAINT, False): "complaints",
    }
    for variant_id, kind, machine, sends in engaged:
        field = fields.get((kind, machine))
        if field:
            for name in (key(variant_id), TOTAL):
                rows[name][field] += sends
    for variant_id, n, revenue in (
        Conversion.objects.filter(campaign=campaign)
        .values_list("variant_id")
        .annotate(n=Count("id"), revenue=Sum("order__total"))
    ):
        for name in (key(variant_id), TOTAL):
            rows[name]["conversions"] += n
            rows[name]["revenue"] += revenue or Decimal("0")
    for variant_id, n in bounced_hard.items():
        for name in (key(variant_id), TOTAL):
            rows[name]["hard_bounces"] += n

    def finish(row: dict) -> dict:
        row["delivered"] = max(row["sent"] - row.pop("hard_bounces"), 0)
        out = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()}
        out.update(_rates(row))
        return out

    # Variants on different channels (an experiment comparing email with push): a total per
    # channel, summed from its variants' rows before the rates are taken. The held-out rows went
    # out on no channel and are in the campaign's total only.
    channels = []
    if len(set(channel_of.values())) > 1:
        for channel in sorted(set(channel_of.values())):
            summed = _empty()
            for name, row in rows.items():
                if channel_of.get(name) == channel:
                    for field, value in row.items():
                        summed[field] = summed.get(field, 0) + value
            channels.append(_no_push_opens({"channel": channel, **finish(summed)}))
    total = finish(rows.pop(TOTAL, _empty()))
    variants = [
        _no_push_opens({"variant": name, "channel": channel_of.get(name), **finish(rows[name])})
        for name in [*names.values(), "held out"]
        if name in rows
    ]
    return {
        "campaign": campaign.pk,
        "name": campaign.name,
        "status": campaign.status,
        "status_reason": campaign.status_reason,
        "totals": total,
        "variants": variants,
        "channels": channels,
        "over_time": over_time(campaign=campaign, bucket=bucket),
    }


def over_time(*, campaign: Campaign, bucket: str = "day") -> list[dict]:
    trunc = BUCKETS.get(bucket, TruncDay)
    series: dict[datetime, dict] = defaultdict(
        lambda: {
            "sent": 0,
            "opens_human": 0,
            "opens_machine": 0,
            "clicks": 0,
            "conversions": 0,
            "revenue": Decimal("0"),
        }
    )
    for at, n in (
        Send.objects.filter(campaign=campaign, state=SendState.SENT)
        .annotate(at=trunc("sent_at"))
        .values_list("at")
        .annotate(n=Count("id"))
    ):
        series[at]["sent"] += n
    for at, opens_human, opens_machine, clicks in (
        TrackingEvent.objects.filter(campaign=campaign, kind__in=[TrackingKind.OPEN, TrackingKind.CLICK])
        .annotate(at=trunc("occurred_at"))
        .values_list("at")
        .annotate(
            opens_human=Count("send_id", distinct=True, filter=Q(kind=TrackingKind.OPEN, machine=False)),
            opens_machine=Count("send_id", distinct=True, filter=Q(kind=TrackingKind.OPEN, machine=True)),
            clicks=Count("send_id", distinct=True, filter=Q(kind=TrackingKind.CLICK, machine=False)),
        )
    ):
        series[at]["opens_human"] += opens_human
        series[at]["opens_machine"] += opens_machine
        series[at]["clicks"] += clicks
    for at, n, revenue in (
        Conversion.objects.filter(campaign=campaign)
        .annotate(at=trunc("placed_at"))
        .values_list("at")
        .annotate(n=Count("id"), revenue=Sum("order__total"))
    ):
        series[at]["conversions"] += n
        series[at]["revenue"] += revenue or Decimal("0")
    return [
        {
            "bucket": at.isoformat(),
            **{k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()},
        }
        for at, values in sorted(series.items())
    ]


def progress(*, campaign: Campaign) -> dict:
    """Ledger counts by state and the latest runs, for the progress view (cheap enough to poll)."""
    states = dict(Send.objects.filter(campaign=campaign).values_list("state").annotate(n=Count("id")))
    total = sum(states.values())
    done = sum(n for state, n in states.items() if state not in ("queued", "sending", "deferred"))
    reasons = list(
        Send.objects.filter(campaign=campaign)
        .exclude(reason="")
        .values("state", "reason")
        .annotate(n=Count("id"))
        .order_by("-n")[:20]
    )
    return {
        "status": campaign.status,
        "status_reason": campaign.status_reason,
        "total": total,
        "done": done,
        "percent": round(100 * done / total, 1) if total else 0.0,
        "states": states,
        "reasons": reasons,
        "runs": list(
            campaign.runs.order_by("-created_at").values(
                "id", "key", "state", "scheduled_for", "audience_size"
            )[:20]
        ),
    }
