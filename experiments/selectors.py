"""Reading what each arm of an experiment did, from the send ledger, tracking events and orders.

Intention to treat (ARCHITECTURE.md, "Attribution versus experiments"): every customer the ledger
put in an arm counts, opened or not, and their orders count whatever link (if any) led to them -
every order placed in the campaign's conversion window after the message went out. Last-touch
attribution (campaigns/tracking/conversions.py) is the campaign report's view, not this one.

Each recipient becomes a small timeline (when the message went out, first human open, first click,
unsubscribe, complaint, the orders in the window), read set-wise in three queries. The totals and
the day-by-day series are both computed from the same timelines, so the last point of the chart is
always the table above it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db.models import F, Min, Q, Subquery
from django.db.models.functions import Coalesce

from campaigns.models import Arm, Campaign, Send, SendState, TrackingEvent, TrackingKind, Variant
from customers.models import Order

CONTROL_KEY = "control"


@dataclass
class Timeline:
    send_id: int
    customer_id: int
    arm_key: str
    start: datetime
    sent: bool
    first_open: datetime | None = None
    first_machine_open: datetime | None = None
    first_click: datetime | None = None
    unsubscribed: datetime | None = None
    complained: datetime | None = None
    orders: list[tuple[datetime, float]] = field(default_factory=list)


@dataclass
class ArmTotals:
    """What one arm did by a moment: the inputs of every statistic on the results page."""

    key: str
    name: str
    variant_id: int | None
    weight: float
    n: int = 0
    opens_human: int = 0
    opens_machine: int = 0
    clicks: int = 0
    unsubscribes: int = 0
    complaints: int = 0
    conversions: int = 0
    revenue: float = 0.0
    revenue_squares: float = 0.0

    def add(self, timeline: Timeline, until: datetime | None, window: timedelta) -> None:
        def by(moment: datetime | None) -> bool:
            return moment is not None and (until is None or moment <= until)

        if until is not None and timeline.start > until:
            return
        self.n += 1
        self.opens_human += by(timeline.first_open)
        self.opens_machine += by(timeline.first_machine_open)
        self.clicks += by(timeline.first_click)
        self.unsubscribes += by(timeline.unsubscribed)
        self.complaints += by(timeline.complained)
        end = timeline.start + window
        value = 0.0
        bought = False
        for placed_at, total in timeline.orders:
            if timeline.start <= placed_at < end and (until is None or placed_at <= until):
                value += total
                bought = bought or total > 0  # a refund is not a conversion
        self.conversions += bought
        self.revenue += value
        self.revenue_squares += value * value

    def as_dict(self) -> dict:
        n = self.n

        def rate(count: int) -> float | None:
            return count / n if n else None

        return {
            "key": self.key,
            "name": self.name,
            "variant_id": self.variant_id,
            "weight": self.weight,
            "recipients": n,
            "opens_human": self.opens_human,
            "opens_machine": self.opens_machine,
            "clicks": self.clicks,
            "unsubscribes": self.unsubscribes,
            "complaints": self.complaints,
            "conversions": self.conversions,
            "revenue": round(self.revenue, 2),
            "revenue_squares": round(self.revenue_squares, 4),
            "open_rate": rate(self.opens_human),
            "click_rate": rate(self.clicks),
            "unsubscribe_rate": rate(self.unsubscribes),
            "complaint_rate": rate(self.complaints),
            "conversion_rate": rate(self.conversions),
            "revenue_per_recipient": self.revenue / n if n else None,
        }


EVENT_FIELDS = {
    (TrackingKind.OPEN, False): "first_open",
    (TrackingKind.OPEN, True): "first_machine_open",
    (TrackingKind.CLICK, False): "first_click",
    (TrackingKind.UNSUBSCRIBE, False): "unsubscribed",
    (TrackingKind.UNSUBSCRIBE, True): "unsubscribed",
    (TrackingKind.COMPLAINT, False): "complained",
    (TrackingKind.COMPLAINT, True): "complained",
}


def timelines(*, sends, window: timedelta, arm_key, from_assignment: bool = False) -> list[Timeline]:
    """One timeline per ledger row of `sends` (a Send queryset); `arm_key(variant, arm) -> str | None` groups them.

    Three set-wise queries: the rows, the first event of each kind per row (one GROUP BY), and the
    orders of their customers in the period. The window starts when the message went out, or
    (`from_assignment`) at the run's time for everyone alike, which is what a comparison with
    customers who were sent nothing needs.
    """
    start = F("run__scheduled_for") if from_assignment else Coalesce("sent_at", "run__scheduled_for")
    rows = (
        sends.annotate(start=start)
        .order_by()
        .values_list("pk", "customer_id", "variant_id", "arm", "state", "start")
    )
    out: list[Timeline] = []
    by_send: dict[int, Timeline] = {}
    by_customer: dict[int, list[Timeline]] = defaultdict(list)
    earliest: datetime | None = None
    latest: datetime | None = None
    for pk, customer_id, variant_id, arm, state, begins in rows.iterator(chunk_size=10_000):
        key = arm_key(variant_id, arm)
        if key is None or begins is None:
            continue
        timeline = Timeline(
            send_id=pk, customer_id=customer_id, arm_key=key, start=begins, sent=state == SendState.SENT
        )
        out.append(timeline)
        by_send[pk] = timeline
        by_customer[customer_id].append(timeline)
        earliest = begins if earliest is None else min(earliest, begins)
        latest = begins if latest is None else max(latest, begins)
    if not out:
        return out
    firsts = (
        TrackingEvent.objects.filter(
            send_id__in=sends.order_by().values("pk"), kind__in=[k for k, _ in EVENT_FIELDS]
        )
        .order_by()
        .values_list("send_id", "kind", "machine")
        .annotate(at=Min("occurred_at"))
    )
    for send_id, kind, machine, at in firsts:
        timeline = by_send.get(send_id)
        name = EVENT_FIELDS.get((kind, machine))
        if timeline is None or name is None:
            continue
        current = getattr(timeline, name)
        if current is None or at < current:
            setattr(timeline, name, at)
    if not out:
        return out
    orders = (
        Order.objects.filter(
            customer_id__in=Subquery(sends.values("customer_id")),
            placed_at__gte=earliest,
            placed_at__lt=latest + window,
        )
        .exclude(status=Order.Status.CANCELLED)
        .values_list("customer_id", "placed_at", "total")
    )
    for customer_id, placed_at, total in orders:
        for timeline in by_customer.get(customer_id, ()):
            if timeline.start <= placed_at < timeline.start + window:
                timeline.orders.append((placed_at, float(total)))
    return out


def variant_timelines(*, campaign: Campaign, variants: Sequence[Variant]) -> list[Timeline]:
    """Recipients of the randomised variants: rows sent in the variant arm (roll-out rows left out)."""
    ids = {v.pk: str(v.pk) for v in variants}
    sends = Send.objects.filter(campaign=campaign, arm=Arm.VARIANT, state=SendState.SENT)
    return timelines(
        sends=sends,
        window=timedelta(hours=campaign.conversion_window_hours),
        arm_key=lambda variant_id, arm: ids.get(variant_id),
    )


def control_timelines(*, campaign: Campaign) -> list[Timeline]:
    """Everyone eligible, treated (any variant, roll-out included) or in the control group.

    Customers refused for consent or address were never going to get the message, whichever arm
    they drew, and are left out of both sides alike. Windows start at the run's time for both
    sides (the control group has no send time), so both sides are measured over the same days.
    """
    sends = Send.objects.filter(campaign=campaign, arm__in=[Arm.VARIANT, Arm.ROLLOUT, Arm.CONTROL]).exclude(
        Q(state=SendState.SUPPRESSED) | Q(state=SendState.CAPPED)
    )
    return timelines(
        sends=sends,
        window=timedelta(hours=campaign.conversion_window_hours),
        arm_key=lambda variant_id, arm: CONTROL_KEY if arm == Arm.CONTROL else "treated",
        from_assignment=True,
    )


def totals(
    items: Iterable[Timeline],
    arms: Sequence[ArmTotals],
    *,
    window: timedelta,
    until: datetime | None = None,
) -> list[ArmTotals]:
    """Fresh totals per arm from the timelines, counting only what had happened by `until`."""
    fresh = {a.key: ArmTotals(key=a.key, name=a.name, variant_id=a.variant_id, weight=a.weight) for a in arms}
    for timeline in items:
        arm = fresh.get(timeline.arm_key)
        if arm is not None:
            arm.add(timeline, until, window)
    return [fresh[a.key] for a in arms]


def totals_over_time(
    items: Sequence[Timeline],
    arms: Sequence[ArmTotals],
    *,
    window: timedelta,
    moments: Sequence[datetime],
) -> list[list[ArmTotals]]:
    """`totals` at each of `moments` (same counting rules), vectorised: one pass per moment in numpy."""
    index = {a.key: i for i, a in enumerate(arms)}
    chosen = [t for t in items if t.arm_key in index]
    k, size = len(arms), len(chosen)

    def stamp(moment: datetime | None) -> float:
        return moment.timestamp() if moment is not None else np.inf

    arm_of = np.fromiter((index[t.arm_key] for t in chosen), dtype=np.int64, count=size)
    start = np.fromiter((t.start.timestamp() for t in chosen), dtype=float, count=size)
    events = {
        name: np.fromiter((stamp(getattr(t, name)) for t in chosen), dtype=float, count=size)
        for name in ("first_open", "first_machine_open", "first_click", "unsubscribed", "complained")
    }
    owners, placed, amounts = [], [], []
    for position, t in enumerate(chosen):
        end = t.start + window
        for placed_at, total in t.orders:
            if t.start <= placed_at < end:
                owners.append(position)
                placed.append(placed_at.timestamp())
                amounts.append(total)
    owners_a = np.asarray(owners, dtype=np.int64)
    placed_a = np.asarray(placed, dtype=float)
    amounts_a = np.asarray(amounts, dtype=float)

    def per_arm(mask, weights=None) -> np.ndarray:
        return np.bincount(arm_of[mask], weights=None if weights is None else weights[mask], minlength=k)

    out = []
    for moment in moments:
        at = moment.timestamp()
        present = start <= at
        done = placed_a <= at
        value = np.bincount(owners_a[done], weights=amounts_a[done], minlength=size)
        purchases = done & (amounts_a > 0)  # a refund is not a conversion
        bought = (np.bincount(owners_a[purchases], minlength=size) > 0).astype(float)
        n = per_arm(present)
        counted = {name: per_arm(present & (when <= at)) for name, when in events.items()}
        revenue = per_arm(present, value)
        squares = per_arm(present, value * value)
        conversions = per_arm(present, bought)
        row = []
        for i, a in enumerate(arms):
            row.append(
                ArmTotals(
                    key=a.key,
                    name=a.name,
                    variant_id=a.variant_id,
                    weight=a.weight,
                    n=int(n[i]),
                    opens_human=int(counted["first_open"][i]),
                    opens_machine=int(counted["first_machine_open"][i]),
                    clicks=int(counted["first_click"][i]),
                    unsubscribes=int(counted["unsubscribed"][i]),
                    complaints=int(counted["complained"][i]),
                    conversions=int(round(conversions[i])),
                    revenue=float(revenue[i]),
                    revenue_squares=float(squares[i]),
                )
            )
        out.append(row)
    return out
