"""The render context of a message, built from an allowlist of plain values for a whole chunk.

Templates never see an ORM object: each part of the context is a dict of named fields copied
out of rows that were read for the entire chunk at once (customers, memberships, expiring
points, tiers, recommendations). The shape is the rendering package's contract
(`campaigns.rendering.context.MessageContext`), documented for marketers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db.models import Min, Sum

from campaigns.models import Campaign, Variant
from loyalty.models import Membership, PointsLot, Tier
from recommender.models import RecommenderConfig
from recommender.selectors import RecommendationRules, recommendations_for

#: Customer fields a template may read.
CUSTOMER_FIELDS = (
    "id",
    "external_id",
    "first_name",
    "last_name",
    "email",
    "locale",
    "timezone",
    "country",
    "attributes",
)
_PLAIN = (str, int, float, bool, type(None))


def plain_attributes(value: Any, depth: int = 0) -> Any:
    """CRM attributes are JSON already; keep them plain and shallow, drop anything else."""
    if isinstance(value, _PLAIN):
        return value
    if depth >= 4:
        return None
    if isinstance(value, dict):
        return {str(k): plain_attributes(v, depth + 1) for k, v in list(value.items())[:100]}
    if isinstance(value, list):
        return [plain_attributes(v, depth + 1) for v in value[:100]]
    return str(value)


def customer_part(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "first_name": row.get("first_name") or None,
        "last_name": row.get("last_name") or None,
        "email": row.get("email") or "",
        "locale": row.get("locale") or None,
        "timezone": row.get("timezone") or None,
        "country": row.get("country") or None,
        "attributes": plain_attributes(row.get("attributes") or {}),
    }


def loyalty_parts(customer_ids: Iterable[int], *, now: datetime) -> dict[int, dict[str, Any]]:
    """Loyalty status per customer (first active program), in three queries for any chunk size."""
    ids = list(customer_ids)
    memberships = (
        Membership.objects.filter(customer_id__in=ids, program__active=True)
        .select_related("program", "tier")
        .order_by("customer_id", "program_id")
    )
    chosen: dict[int, Membership] = {}
    for membership in memberships:
        chosen.setdefault(membership.customer_id, membership)
    if not chosen:
        return {}
    horizon = now + timedelta(days=getattr(settings, "CAMPAIGN_POINTS_EXPIRING_DAYS", 30))
    expiring = {
        row["membership_id"]: row
        for row in PointsLot.objects.filter(
            membership_id__in=[m.pk for m in chosen.values()],
            remaining__gt=0,
            expires_at__gt=now,
            expires_at__lte=horizon,
        )
        .values("membership_id")
        .annotate(points=Sum("remaining"), first=Min("expires_at"))
    }
    tiers: dict[int, list[Tier]] = {}
    for tier in Tier.objects.filter(program_id__in={m.program_id for m in chosen.values()}).order_by(
        "threshold"
    ):
        tiers.setdefault(tier.program_id, []).append(tier)
    parts = {}
    for customer_id, membership in chosen.items():
        soon = expiring.get(membership.pk)
        upcoming = [
            t for t in tiers.get(membership.program_id, []) if t.threshold > membership.lifetime_points
        ]
        parts[customer_id] = {
            "program": membership.program.name,
            "tier": membership.tier.name if membership.tier else None,
            "points": membership.balance,
            "points_expiring": int(soon["points"]) if soon else 0,
            "points_expiring_at": soon["first"].date() if soon else None,
            "next_tier": upcoming[0].name if upcoming else None,
            "points_to_next_tier": (upcoming[0].threshold - membership.lifetime_points) if upcoming else None,
        }
    return parts


def recommendation_rules(campaign: Campaign) -> RecommendationRules:
    return RecommendationRules(
        n=campaign.recommendation_count,
        categories=tuple(campaign.recommendation_categories or ()),
        brands=tuple(campaign.recommendation_brands or ()),
        in_stock_only=campaign.recommendation_in_stock_only,
        exclude_skus=tuple(campaign.recommendation_exclude_skus or ()),
    )


def _price(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def recommendation_parts(
    customer_ids: Iterable[int], *, campaign: Campaign, config: RecommenderConfig | None = None
) -> dict[int, list[dict[str, Any]]]:
    """The recommender's product cards in the template's shape, one batch call for the chunk.

    `config` is the variant's recommender (an experiment comparing algorithms); None is the
    default one. Either way the one selector applies the campaign's rules.
    """
    if not campaign.recommendation_count:
        return {}
    cards = recommendations_for(
        customer_ids=list(customer_ids), rules=recommendation_rules(campaign), config=config
    )
    return {
        customer_id: [
            {
                "name": card["name"],
                "url": card["url"],
                "image_url": card.get("image_url") or None,
                "price": _price(card.get("price")),
                "currency": card.get("currency") or None,
                "explanation": card.get("explanation") or None,
                "sku": card["sku"],
                "category": card.get("category") or None,
            }
            for card in products
        ]
        for customer_id, products in cards.items()
    }


def company_part() -> dict[str, str]:
    return {"name": settings.COMPANY_NAME, "postal_address": settings.COMPANY_POSTAL_ADDRESS}


def message_context(
    *,
    customer: dict[str, Any],
    loyalty: dict[str, Any] | None,
    recommendations: list[dict[str, Any]],
    campaign: Campaign,
    variant: Variant | None,
    unsubscribe_url: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "customer": customer_part(customer),
        "loyalty": loyalty,
        "recommendations": recommendations,
        "campaign": {"name": campaign.name, "variant": variant.name if variant else None},
        "links": {"unsubscribe_url": unsubscribe_url, "preferences_url": None},
        "company": company_part(),
        "now": now,
    }
