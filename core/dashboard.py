"""Reads for the admin dashboard: a handful of aggregate queries, cached briefly.

Every figure is one aggregate query (a COUNT or a GROUP BY day), never a loop over rows, so the
page stays fast on a million customers; the cache keeps a busy team from repeating them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

CACHE_KEY = "admin-dashboard:v1"
CACHE_SECONDS = 60
DAYS = 30


def _per_day(queryset, field: str, *, since: dt.datetime, extra: dict | None = None) -> dict:
    rows = (
        queryset.filter(**{f"{field}__gte": since})
        .annotate(day=TruncDate(field, tzinfo=dt.UTC))
        .values("day")
        .annotate(n=Count("id"), **(extra or {}))
        .order_by("day")
    )
    return {row["day"]: row for row in rows}


def dashboard_numbers(*, now: dt.datetime | None = None) -> dict:
    """The figures behind the dashboard, as plain data (cacheable, testable with known rows)."""
    from campaigns.models import Campaign, Conversion, Send, SendState, TrackingEvent, TrackingKind
    from customers.models import ConsentStatus, Customer, CustomerConsent
    from recommender.models import RecommenderConfig
    from segments.models import Segment

    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    since = dt.datetime.combine(today - dt.timedelta(days=DAYS - 1), dt.time.min, tzinfo=dt.UTC)
    week_ago = now - dt.timedelta(days=7)

    # Deleted and erased customers are few: excluding them through a small hashed subquery
    # costs about half of joining every consent row to its customer.
    gone = Customer.all_objects.filter(Q(deleted_at__isnull=False) | Q(erased_at__isnull=False))
    reach = dict(
        CustomerConsent.objects.filter(status=ConsentStatus.GRANTED)
        .exclude(customer_id__in=gone.values("id"))
        .values_list("channel")
        .annotate(n=Count("id"))
        .order_by()
    )
    sends = _per_day(Send.objects.filter(state=SendState.SENT), "sent_at", since=since)
    opens = _per_day(
        TrackingEvent.objects.filter(kind=TrackingKind.OPEN, machine=False), "occurred_at", since=since
    )
    clicks = _per_day(
        TrackingEvent.objects.filter(kind=TrackingKind.CLICK, machine=False), "occurred_at", since=since
    )
    conversions = _per_day(
        Conversion.objects.all(), "placed_at", since=since, extra={"revenue": Sum("revenue")}
    )
    days = [today - dt.timedelta(days=DAYS - 1 - i) for i in range(DAYS)]

    def column(rows: dict, key: str = "n") -> list[float]:
        return [float(rows.get(day, {}).get(key) or 0) for day in days]

    models = []
    for config in RecommenderConfig.objects.filter(active_version__isnull=False).select_related(
        "active_version"
    ):
        version = config.active_version
        metrics = {k: v for k, v in (version.metrics or {}).items() if isinstance(v, int | float)}
        models.append(
            {
                "config": config.name,
                "version": version.pk,
                "algorithm": version.algorithm,
                "is_default": config.is_default,
                "promoted_at": version.promoted_at,
                "metrics": dict(sorted(metrics.items())[:6]),
            }
        )
    revenue = sum((Decimal(str(r.get("revenue") or 0)) for r in conversions.values()), Decimal("0"))
    return {
        "computed_at": now,
        "customers": Customer.objects.count(),
        "reach": {channel: reach.get(channel, 0) for channel in ("email", "push", "sms")},
        "campaigns_this_week": Campaign.objects.filter(launched_at__gte=week_ago).count(),
        "sent_this_week": Send.objects.filter(state=SendState.SENT, sent_at__gte=week_ago).count(),
        "days": [day.isoformat() for day in days],
        "series": {
            "sent": column(sends),
            "opens": column(opens),
            "clicks": column(clicks),
            "conversions": column(conversions),
            "revenue": column(conversions, "revenue"),
        },
        "totals_30d": {
            "sent": int(sum(column(sends))),
            "opens": int(sum(column(opens))),
            "clicks": int(sum(column(clicks))),
            "conversions": int(sum(column(conversions))),
            "revenue": revenue,
        },
        "top_segments": list(
            Segment.objects.filter(active=True)
            .order_by("-member_count", "name")
            .values("id", "name", "member_count", "refreshed_at")[:6]
        ),
        "models": models,
    }


def cached_dashboard_numbers() -> dict:
    return cache.get_or_set(CACHE_KEY, dashboard_numbers, CACHE_SECONDS)
