"""The customer page's timeline: what happened to a customer, newest first, from every app.

Apps add their own entries (campaign messages, segment changes, recommendations) by registering
a source in their AppConfig.ready():

    from customers.timeline import TimelineEntry, register_timeline_source
    register_timeline_source("messages", lambda *, customer, limit: [TimelineEntry(...), ...])

Each source returns at most `limit` entries; the page merges and sorts them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    title: str
    detail: str = ""
    url: str = ""


TimelineSource = Callable[..., list[TimelineEntry]]
_SOURCES: dict[str, TimelineSource] = {}


def register_timeline_source(name: str, source: TimelineSource) -> None:
    _SOURCES[name] = source


def customer_timeline(*, customer, limit: int = 100) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    for source in _SOURCES.values():
        entries.extend(source(customer=customer, limit=limit))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


def admin_url(obj) -> str:
    try:
        return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""


def _orders(*, customer, limit: int) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            at=o.placed_at,
            kind="order",
            title=f"Order {o.external_id} ({o.get_status_display()})",
            detail=f"{o.total} {o.currency}",
            url=admin_url(o),
        )
        for o in customer.orders.order_by("-placed_at")[:limit]
    ]


def _events(*, customer, limit: int) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            at=e.occurred_at,
            kind="event",
            title=e.name or e.get_type_display(),
            detail=e.product.name if e.product_id else "",
        )
        for e in customer.events.select_related("product").order_by("-occurred_at")[:limit]
    ]


def _consent(*, customer, limit: int) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            at=r.occurred_at,
            kind="consent",
            title=f"{r.get_channel_display()} consent {r.get_action_display().lower()}",
            detail=f"source: {r.source}",
        )
        for r in customer.consent_records.order_by("-occurred_at")[:limit]
    ]


register_timeline_source("orders", _orders)
register_timeline_source("events", _events)
register_timeline_source("consent", _consent)
