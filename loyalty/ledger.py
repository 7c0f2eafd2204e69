"""The loyalty ledger's one writer: `post_entries`, and the errors and entries it speaks in.

Every change of points goes through `post_entries`, which locks the memberships it touches
(`select_for_update`, in id order so two writers never deadlock), appends ledger rows, keeps the
FIFO lots and the cached balance in step, re-evaluates tiers and writes `points.changed` outbox
messages, all in one transaction and a fixed number of queries however many entries it gets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.hashing import payload_digest
from loyalty.models import Membership, PointsLot, PointsTransaction, Tier
from webhooks.services import publish_many

Kind = PointsTransaction.Kind


class LoyaltyError(ValueError):
    code = "invalid"


class InsufficientPoints(LoyaltyError):
    code = "insufficient_points"


class IdempotencyConflict(LoyaltyError):
    code = "conflict"


class RewardNotAvailable(LoyaltyError):
    code = "reward_not_available"


@dataclass(frozen=True)
class PointsEntry:
    """One change of points to append. `clamp` caps a debit at the balance instead of refusing it."""

    membership_id: int
    kind: str
    points: int
    idempotency_key: str
    reason: str = ""
    source_type: str = ""
    source_id: str = ""
    occurred_at: datetime | None = None
    clamp: bool = False
    counts_toward_tier: bool = False
    lot_id: int | None = None
    payload: dict = field(default_factory=dict, compare=False)


@dataclass
class _State:
    membership: Membership
    tiers: list[Tier]
    lots: list[PointsLot] | None = None


def _payload_hash(entry: PointsEntry) -> str:
    return payload_digest(
        {
            "kind": entry.kind,
            "points": entry.points,
            "reason": entry.reason,
            "source_type": entry.source_type,
            "source_id": entry.source_id,
            **entry.payload,
        }
    )


def _tier_for(tiers: list[Tier], lifetime: int) -> Tier | None:
    chosen = None
    for tier in tiers:  # ordered by threshold
        if lifetime >= tier.threshold:
            chosen = tier
    return chosen


def _tiers_by_program(program_ids: Iterable[int]) -> dict[int, list[Tier]]:
    tiers: dict[int, list[Tier]] = defaultdict(list)
    for tier in Tier.objects.filter(program_id__in=set(program_ids)).order_by("program_id", "threshold"):
        tiers[tier.program_id].append(tier)
    return tiers


def post_entries(*, entries: Sequence[PointsEntry], now: datetime | None = None) -> list[PointsTransaction]:
    """Append entries to the ledger; replays of a known key with the same content return the first row.

    Raises InsufficientPoints (nothing written) when a debit would take a balance below zero in a
    program that does not allow it, and IdempotencyConflict when a key is reused for other content.
    """
    if not entries:
        return []
    now = now or timezone.now()
    with transaction.atomic():
        ids = sorted({e.membership_id for e in entries})
        memberships = {
            m.pk: m
            for m in Membership.objects.select_for_update(of=("self",))
            .select_related("program", "customer")
            .filter(pk__in=ids)
            .order_by("pk")
        }
        missing = set(ids) - set(memberships)
        if missing:
            raise LoyaltyError(f"Unknown membership(s): {sorted(missing)}")
        tiers = _tiers_by_program(m.program_id for m in memberships.values())
        states = {pk: _State(m, tiers.get(m.program_id, [])) for pk, m in memberships.items()}
        known = {
            (t.membership_id, t.idempotency_key): t
            for t in PointsTransaction.objects.filter(
                membership_id__in=ids, idempotency_key__in={e.idempotency_key for e in entries}
            )
        }
        debit_ids = {e.membership_id for e in entries if e.points < 0 and e.lot_id is None}
        lot_ids = {e.lot_id for e in entries if e.lot_id is not None}
        if debit_ids or lot_ids:
            lots = (
                PointsLot.objects.select_for_update()
                .filter(Q(membership_id__in=debit_ids, remaining__gt=0) | Q(pk__in=lot_ids))
                .order_by(F("expires_at").asc(nulls_last=True), "pk")
            )
            by_membership: dict[int, list[PointsLot]] = defaultdict(list)
            for lot in lots:
                by_membership[lot.membership_id].append(lot)
            for pk in debit_ids | {lot.membership_id for lots_ in by_membership.values() for lot in lots_}:
                if pk in states:
                    states[pk].lots = by_membership.get(pk, [])

        results: list[PointsTransaction | None] = []
        new_rows: list[PointsTransaction] = []
        new_lots: list[tuple[PointsTransaction, datetime | None]] = []
        touched_lots: dict[int, PointsLot] = {}
        changed: dict[int, Membership] = {}
        seen_keys: dict[tuple[int, str], PointsTransaction] = {}
        for entry in entries:
            key = (entry.membership_id, entry.idempotency_key)
            digest = _payload_hash(entry)
            previous = known.get(key) or seen_keys.get(key)
            if previous is not None:
                if previous.payload_hash != digest:
                    raise IdempotencyConflict(
                        f"Idempotency key {entry.idempotency_key!r} was already used for another change of points."
                    )
                results.append(previous)
                continue
            state = states[entry.membership_id]
            membership = state.membership
            program = membership.program
            points = entry.points
            if points < 0 and not program.allow_negative_balance and membership.balance + points < 0:
                if not entry.clamp:
                    raise InsufficientPoints(f"Balance is {membership.balance} points; {-points} needed.")
                points = -max(membership.balance, 0)
            if points == 0:
                results.append(None)
                continue
            occurred_at = entry.occurred_at or now
            membership.balance += points
            if entry.kind == Kind.EARN or entry.counts_toward_tier:
                membership.lifetime_points = max(membership.lifetime_points + points, 0)
            expires_at = None
            if points > 0 and program.points_expiry_days:
                expires_at = occurred_at + timedelta(days=program.points_expiry_days)
            row = PointsTransaction(
                membership_id=membership.pk,
                kind=entry.kind,
                points=points,
                balance_after=membership.balance,
                idempotency_key=entry.idempotency_key,
                payload_hash=digest,
                reason=entry.reason[:255],
                source_type=entry.source_type[:32],
                source_id=str(entry.source_id)[:191],
                occurred_at=occurred_at,
                expires_at=expires_at,
            )
            new_rows.append(row)
            seen_keys[key] = row
            results.append(row)
            if points > 0:
                new_lots.append((row, expires_at))
            else:
                _consume(state, -points, entry.lot_id, touched_lots)
            tier = _tier_for(state.tiers, membership.lifetime_points)
            if (tier.pk if tier else None) != membership.tier_id:
                membership.tier = tier
                membership.tier_changed_at = now
            changed[membership.pk] = membership

        created = PointsTransaction.objects.bulk_create(new_rows, batch_size=2000)
        if new_lots:
            PointsLot.objects.bulk_create(
                [
                    PointsLot(
                        membership_id=row.membership_id,
                        earned_by_id=row.pk,
                        remaining=row.points,
                        expires_at=exp,
                    )
                    for row, exp in new_lots
                ],
                batch_size=2000,
            )
        if touched_lots:
            PointsLot.objects.bulk_update(list(touched_lots.values()), ["remaining"], batch_size=2000)
        if changed:
            for membership in changed.values():
                membership.updated_at = now
            Membership.objects.bulk_update(
                list(changed.values()),
                ["balance", "lifetime_points", "tier", "tier_changed_at", "updated_at"],
                batch_size=2000,
            )
        if created:
            publish_many(
                topic="points.changed",
                payloads=[
                    {
                        "transaction_id": row.pk,
                        "membership_id": row.membership_id,
                        "program": states[row.membership_id].membership.program.slug,
                        "customer": states[row.membership_id].membership.customer.external_id,
                        "kind": row.kind,
                        "points": row.points,
                        "balance": row.balance_after,
                        "occurred_at": row.occurred_at.isoformat(),
                    }
                    for row in created
                ],
            )
    return [r for r in results if r is not None]


def _consume(state: _State, amount: int, lot_id: int | None, touched: dict[int, PointsLot]) -> None:
    """Take `amount` points out of the lots, oldest-expiring first (or out of one lot for expiry)."""
    lots = state.lots or []
    if lot_id is not None:
        lots = [lot for lot in lots if lot.pk == lot_id]
    for lot in lots:
        if amount <= 0:
            break
        if lot.remaining <= 0:
            continue
        take = min(lot.remaining, amount)
        lot.remaining -= take
        amount -= take
        touched[lot.pk] = lot
