"""Writes to the loyalty ledger: enrolment, earning, redemption, adjustment, expiry, tiers.

Each verb builds `PointsEntry`s and hands them to `loyalty.ledger.post_entries`, the ledger's one
writer (locks, lots, balances, tiers and outbox messages in one transaction). The ledger's names
are re-exported here, where callers import them from.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from loyalty.ledger import (
    IdempotencyConflict,
    InsufficientPoints,
    Kind,
    LoyaltyError,
    PointsEntry,
    RewardNotAvailable,
    post_entries,
)
from loyalty.models import LoyaltyProgram, Membership, PointsLot, PointsTransaction, Redemption, Reward, Tier

__all__ = [
    "IdempotencyConflict",
    "InsufficientPoints",
    "Kind",
    "LoyaltyError",
    "PointsEntry",
    "RewardNotAvailable",
    "adjust_points",
    "apply_event_points",
    "apply_order_points",
    "award_points",
    "enrol",
    "enrol_customers",
    "expire_points",
    "order_points",
    "post_entries",
    "redeem_reward",
    "reevaluate_tiers",
]


# --- single-entry verbs --------------------------------------------------------------------------


def enrol(*, customer, program: LoyaltyProgram, joined_at: datetime | None = None) -> Membership:
    """Make a customer a member (idempotent); the entry tier is the one with threshold 0, if any."""
    entry_tier = program.tiers.filter(threshold=0).first()
    membership, _ = Membership.objects.get_or_create(
        program=program,
        customer=customer,
        defaults={"joined_at": joined_at or timezone.now(), "tier": entry_tier},
    )
    return membership


def enrol_customers(*, program: LoyaltyProgram, customer_ids: Iterable[int]) -> int:
    """Enrol many customers at once (the demo, a CRM migration); existing members are left as they are."""
    entry_tier = program.tiers.filter(threshold=0).first()
    now = timezone.now()
    rows = [
        Membership(program=program, customer_id=cid, joined_at=now, tier=entry_tier)
        for cid in set(customer_ids)
    ]
    before = Membership.objects.filter(program=program).count()
    Membership.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return Membership.objects.filter(program=program).count() - before


def award_points(
    *,
    membership: Membership,
    points: int,
    idempotency_key: str,
    reason: str = "",
    source_type: str = "",
    source_id: str = "",
    occurred_at: datetime | None = None,
) -> PointsTransaction:
    if points <= 0:
        raise LoyaltyError("Awarded points must be positive.")
    (row,) = post_entries(
        entries=[
            PointsEntry(
                membership_id=membership.pk,
                kind=Kind.EARN,
                points=points,
                idempotency_key=idempotency_key,
                reason=reason,
                source_type=source_type,
                source_id=source_id,
                occurred_at=occurred_at,
            )
        ]
    )
    membership.refresh_from_db()
    return row


def adjust_points(
    *, membership: Membership, points: int, idempotency_key: str, reason: str, actor=None
) -> PointsTransaction:
    """A correction by staff: positive or negative, never below zero unless the program allows."""
    if points == 0:
        raise LoyaltyError("An adjustment must change the balance.")
    if not reason:
        raise LoyaltyError("An adjustment needs a reason.")
    rows = post_entries(
        entries=[
            PointsEntry(
                membership_id=membership.pk,
                kind=Kind.ADJUST,
                points=points,
                idempotency_key=idempotency_key,
                reason=reason,
                source_type="staff",
                source_id=str(getattr(actor, "pk", "") or ""),
            )
        ]
    )
    membership.refresh_from_db()
    return rows[0]


def redeem_reward(*, membership: Membership, reward: Reward, idempotency_key: str) -> Redemption:
    """Spend points on a reward; the same key again returns the same redemption."""
    with transaction.atomic():
        existing = PointsTransaction.objects.filter(
            membership=membership, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            redemption = Redemption.objects.filter(transaction=existing, reward=reward).first()
            if redemption is None:
                raise IdempotencyConflict(
                    f"Idempotency key {idempotency_key!r} was already used for another change of points."
                )
            return redemption
        if reward.program_id != membership.program_id:
            raise RewardNotAvailable("This reward belongs to another loyalty program.")
        if not reward.active:
            raise RewardNotAvailable("This reward is not available any more.")
        if reward.minimum_tier_id is not None:
            current = membership.tier.threshold if membership.tier_id else -1
            if current < reward.minimum_tier.threshold:
                raise RewardNotAvailable(f"This reward needs the {reward.minimum_tier.name} tier.")
        (row,) = post_entries(
            entries=[
                PointsEntry(
                    membership_id=membership.pk,
                    kind=Kind.REDEEM,
                    points=-reward.cost_points,
                    idempotency_key=idempotency_key,
                    reason=f"Redeemed {reward.name}"[:255],
                    source_type="reward",
                    source_id=str(reward.pk),
                )
            ]
        )
        redemption = Redemption.objects.create(membership=membership, reward=reward, transaction=row)
    membership.refresh_from_db()
    return redemption


# --- earning rules applied by the ingest ---------------------------------------------------------


def _memberships_for(customer_ids: Iterable[int]) -> dict[int, list[Membership]]:
    by_customer: dict[int, list[Membership]] = defaultdict(list)
    for m in Membership.objects.filter(
        customer_id__in=set(customer_ids), program__active=True
    ).select_related("program", "tier"):
        by_customer[m.customer_id].append(m)
    return by_customer


def order_points(*, total: Decimal, program: LoyaltyProgram, tier: Tier | None) -> int:
    """Points for an order value: whole points, rounded toward zero, so a refund never over-claws."""
    multiplier = tier.multiplier if tier is not None else Decimal(1)
    raw = Decimal(total) * program.points_per_currency_unit * multiplier
    return int(math.copysign(math.floor(abs(raw)), raw)) if raw else 0


def apply_order_points(*, orders: Sequence) -> int:
    """Earn points for new orders in every active program the customer belongs to.

    Only orders in the program's currency earn. An order with a negative total (a return or a
    cancellation) claws the points back, capped at the balance when negative balances are off.
    """
    memberships = _memberships_for(o.customer_id for o in orders)
    entries = []
    for order in orders:
        for m in memberships.get(order.customer_id, []):
            if order.currency != m.program.currency:
                continue
            points = order_points(total=order.total, program=m.program, tier=m.tier)
            if points == 0:
                continue
            entries.append(
                PointsEntry(
                    membership_id=m.pk,
                    kind=Kind.EARN if points > 0 else Kind.ADJUST,
                    points=points,
                    idempotency_key=f"order:{order.pk}",
                    reason=f"Order {order.external_id}"[:255]
                    if points > 0
                    else f"Refund {order.external_id}"[:255],
                    source_type="order",
                    source_id=order.external_id,
                    occurred_at=order.placed_at,
                    clamp=points < 0,
                    counts_toward_tier=True,
                )
            )
    rows = post_entries(entries=entries)
    return sum(r.points for r in rows)


def apply_event_points(*, events: Sequence) -> int:
    """Earn the fixed points a program gives for an event (by custom name first, then by type)."""
    memberships = _memberships_for(e.customer_id for e in events)
    entries = []
    for event in events:
        for m in memberships.get(event.customer_id, []):
            rules = m.program.event_points or {}
            points = rules.get(event.name) if event.name else None
            if points is None:
                points = rules.get(event.type)
            if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
                continue
            entries.append(
                PointsEntry(
                    membership_id=m.pk,
                    kind=Kind.EARN,
                    points=points,
                    idempotency_key=f"event:{event.pk}",
                    reason=f"{event.name or event.type} event"[:255],
                    source_type="event",
                    source_id=str(event.pk),
                    occurred_at=event.occurred_at,
                )
            )
    rows = post_entries(entries=entries)
    return sum(r.points for r in rows)


# --- scheduled work ------------------------------------------------------------------------------


def expire_points(*, now: datetime | None = None, chunk_size: int = 5000) -> int:
    """Expire what is left of lots past their date: one `expire` entry per lot, keyed by the lot.

    Safe to run twice or concurrently: an expired lot has nothing left, and the key is unique.
    """
    now = now or timezone.now()
    expired = 0
    while True:
        due = list(
            PointsLot.objects.filter(remaining__gt=0, expires_at__lte=now)
            .order_by("pk")
            .values_list("pk", "membership_id", "remaining")[:chunk_size]
        )
        if not due:
            return expired
        entries = [
            PointsEntry(
                membership_id=membership_id,
                kind=Kind.EXPIRE,
                points=-remaining,
                idempotency_key=f"expire:lot:{lot_id}",
                reason="Points expired",
                source_type="lot",
                source_id=str(lot_id),
                clamp=True,
                lot_id=lot_id,
                payload={"lot": lot_id},
            )
            for lot_id, membership_id, remaining in due
        ]
        with transaction.atomic():
            rows = post_entries(entries=entries, now=now)
            # A lot is done once past its date, even when a clamp left some of it unspent.
            PointsLot.objects.filter(pk__in=[lot_id for lot_id, _, _ in due]).update(remaining=0)
        expired += -sum(r.points for r in rows)
        if len(due) < chunk_size:
            return expired


def reevaluate_tiers(*, program: LoyaltyProgram | None = None) -> int:
    """Put every member in the tier their lifetime points reach: one UPDATE per tier band."""
    now = timezone.now()
    programs = [program] if program is not None else list(LoyaltyProgram.objects.filter(active=True))
    changed = 0
    for prog in programs:
        tiers = list(prog.tiers.order_by("threshold"))
        members = Membership.objects.filter(program=prog)
        if not tiers:
            changed += members.exclude(tier=None).update(tier=None, tier_changed_at=now)
            continue
        changed += (
            members.filter(lifetime_points__lt=tiers[0].threshold)
            .exclude(tier=None)
            .update(tier=None, tier_changed_at=now)
        )
        for tier, upper in zip(tiers, [t.threshold for t in tiers[1:]] + [None], strict=True):
            band = members.filter(lifetime_points__gte=tier.threshold)
            if upper is not None:
                band = band.filter(lifetime_points__lt=upper)
            changed += band.exclude(tier=tier).update(tier=tier, tier_changed_at=now)
    return changed
