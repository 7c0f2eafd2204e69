"""Reads about loyalty: what a customer holds, for the API, the admin and the GDPR export."""

from __future__ import annotations

from typing import Any

from customers.gdpr import plain
from loyalty.models import Membership, PointsTransaction


def memberships_of(*, customer):
    return Membership.objects.filter(customer=customer).select_related("program", "tier")


def recent_transactions(*, customer, limit: int = 50):
    return (
        PointsTransaction.objects.filter(membership__customer=customer)
        .select_related("membership__program")
        .order_by("-occurred_at", "-id")[:limit]
    )


def export_loyalty(*, customer) -> list[dict[str, Any]]:
    out = []
    for membership in memberships_of(customer=customer).prefetch_related(
        "transactions", "redemptions__reward"
    ):
        item = plain(membership, ["balance", "lifetime_points", "joined_at", "tier_changed_at"])
        item["program"] = membership.program.slug
        item["tier"] = membership.tier.name if membership.tier_id else None
        item["transactions"] = [
            plain(
                t,
                [
                    "kind",
                    "points",
                    "balance_after",
                    "reason",
                    "source_type",
                    "source_id",
                    "occurred_at",
                    "expires_at",
                ],
            )
            for t in sorted(membership.transactions.all(), key=lambda t: (t.occurred_at, t.pk))
        ]
        item["redemptions"] = [
            {"reward": r.reward.name, "created_at": r.created_at.isoformat()}
            for r in membership.redemptions.all()
        ]
        out.append(item)
    return out


def points_timeline(*, customer, limit: int):
    from customers.timeline import TimelineEntry

    return [
        TimelineEntry(
            at=t.occurred_at,
            kind="points",
            title=f"{t.points:+d} points ({t.get_kind_display().lower()})",
            detail=f"{t.membership.program.name}: {t.reason}".strip(": "),
        )
        for t in recent_transactions(customer=customer, limit=limit)
    ]
