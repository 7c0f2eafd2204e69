"""Attribution: each order goes to the last send the customer clicked, else opened, within the window.

Only human engagement counts (a scanner's click or a privacy proxy's open says nothing about the
customer). The window is the campaign's own `conversion_window_hours`, measured back from the
order. This is the campaign report's view; experiments compare whole arms instead (intention
to treat, ARCHITECTURE.md), so nothing here feeds an experiment's verdict.

Runs for a batch of orders in a fixed number of queries: call `attribute_orders` from the
order ingest, or let `attribute_new_orders` (beat) read new orders by id cursor.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.db.models import Max

from campaigns.models import Campaign, Conversion, ProcessingCursor, TrackingEvent, TrackingKind
from customers.models import Order

BATCH = 2000
CURSOR = "attribution.orders"


def attribute_orders(*, order_ids: Iterable[int]) -> int:
    """Credit each of these orders to its last human click (else open) in the window; returns how many."""
    orders = list(
        Order.objects.filter(pk__in=list(order_ids), total__gt=0, conversion__isnull=True)
        .exclude(status=Order.Status.CANCELLED)
        .values("id", "customer_id", "placed_at", "total")
    )
    if not orders:
        return 0
    longest = Campaign.objects.aggregate(m=Max("conversion_window_hours"))["m"] or 0
    earliest = min(o["placed_at"] for o in orders) - timedelta(hours=longest)
    latest = max(o["placed_at"] for o in orders)
    touches: dict[int, list[dict]] = {}
    for event in (
        TrackingEvent.objects.filter(
            customer_id__in={o["customer_id"] for o in orders},
            kind__in=[TrackingKind.CLICK, TrackingKind.OPEN],
            machine=False,
            occurred_at__gte=earliest,
            occurred_at__lte=latest,
        )
        .values(
            "send_id",
            "campaign_id",
            "variant_id",
            "customer_id",
            "kind",
            "occurred_at",
            "campaign__conversion_window_hours",
        )
        .order_by("occurred_at", "id")
    ):
        touches.setdefault(event["customer_id"], []).append(event)
    conversions = []
    for order in orders:
        best = _last_touch(touches.get(order["customer_id"], []), order["placed_at"])
        if best is None:
            continue
        conversions.append(
            Conversion(
                order_id=order["id"],
                send_id=best["send_id"],
                campaign_id=best["campaign_id"],
                variant_id=best["variant_id"],
                customer_id=order["customer_id"],
                touch=Conversion.Touch.CLICK if best["kind"] == TrackingKind.CLICK else Conversion.Touch.OPEN,
                touched_at=best["occurred_at"],
                placed_at=order["placed_at"],
                revenue=order["total"],
            )
        )
    Conversion.objects.bulk_create(conversions, ignore_conflicts=True)
    return len(conversions)


def _last_touch(events: list[dict], placed_at) -> dict | None:
    """The latest click before the order within its campaign's window, else the latest open."""
    in_window = [
        e
        for e in events
        if e["occurred_at"] <= placed_at
        and placed_at - e["occurred_at"] <= timedelta(hours=e["campaign__conversion_window_hours"])
    ]
    clicks = [e for e in in_window if e["kind"] == TrackingKind.CLICK]
    pool = clicks or in_window
    return pool[-1] if pool else None


def attribute_new_orders() -> int:
    """Attribute orders past the cursor, batch by batch; the cursor moves with the conversions."""
    total = 0
    while True:
        with transaction.atomic():
            cursor, _ = ProcessingCursor.objects.select_for_update().get_or_create(name=CURSOR)
            ids = list(
                Order.objects.filter(pk__gt=cursor.last_id)
                .order_by("pk")
                .values_list("pk", flat=True)[:BATCH]
            )
            if not ids:
                return total
            total += attribute_orders(order_ids=ids)
            cursor.last_id = ids[-1]
            cursor.save(update_fields=["last_id", "updated_at"])
        if len(ids) < BATCH:
            return total
