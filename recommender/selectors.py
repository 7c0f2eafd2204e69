"""Recommendations as campaigns and the API read them: one selector that applies the rules.

Stored top-N rows of the active model version are filtered at read time (stock and activity
change faster than models retrain); customers without enough stored rows are topped up with
the popularity fallback, so every customer gets a full list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Q, Sum
from django.utils import timezone

from catalog.models import Product
from customers.models import OrderLine
from recommender.models import Recommendation, RecommenderConfig

POPULARITY_WINDOW_DAYS = 30


@dataclass(frozen=True)
class RecommendationRules:
    """Per-campaign rules applied on top of the model's ranking."""

    n: int = 4
    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    in_stock_only: bool = True
    exclude_skus: tuple[str, ...] = field(default_factory=tuple)


def default_config() -> RecommenderConfig | None:
    return RecommenderConfig.objects.filter(is_default=True).select_related("active_version").first()


def _product_filter(rules: RecommendationRules) -> Q:
    q = Q(active=True)
    if rules.in_stock_only:
        q &= Q(stock__isnull=True) | Q(stock__gt=0)
    if rules.categories:
        category_q = Q()
        for path in rules.categories:
            category_q |= Q(category_path=path) | Q(category_path__startswith=f"{path} > ")
        q &= category_q
    if rules.brands:
        q &= Q(brand__in=rules.brands)
    if rules.exclude_skus:
        q &= ~Q(sku__in=rules.exclude_skus)
    return q


def product_card(product: Product, *, score: float | None, explanation: dict) -> dict:
    """The plain dict a template sees for a product (never the ORM object)."""
    return {
        "sku": product.sku,
        "name": product.name,
        "url": product.url,
        "image_url": product.image_url,
        "price": str(product.price),
        "currency": product.currency,
        "category": product.category_path,
        "brand": product.brand,
        "score": score,
        "explanation": explanation.get("text", ""),
        "because": explanation.get("because", []),
    }


def popular_products(*, rules: RecommendationRules, limit: int) -> list[Product]:
    since = timezone.now() - timedelta(days=POPULARITY_WINDOW_DAYS)
    ranked = (
        Product.objects.filter(_product_filter(rules))
        .annotate(
            sold=Sum("order_lines__quantity", filter=Q(order_lines__order__placed_at__gte=since)),
            buyers=Count("order_lines__order__customer", distinct=True),
        )
        .order_by("-sold", "-buyers", "sku")
    )
    products = [p for p in ranked[:limit] if p.sold or p.buyers]
    if len(products) < limit:
        seen = {p.pk for p in products}
        extra = (
            Product.objects.filter(_product_filter(rules))
            .exclude(pk__in=seen)
            .order_by("sku")[: limit - len(products)]
        )
        products.extend(extra)
    return products


def recommendations_for(
    *,
    customer_ids: Iterable[int],
    rules: RecommendationRules | None = None,
    config: RecommenderConfig | None = None,
) -> dict[int, list[dict]]:
    """Top products per customer id, rules applied, in a fixed number of queries for any batch size."""
    rules = rules or RecommendationRules()
    ids = list(customer_ids)
    config = config or default_config()
    result: dict[int, list[dict]] = {cid: [] for cid in ids}
    if config is not None and config.active_version_id is not None and ids:
        rows = (
            Recommendation.objects.filter(model_version_id=config.active_version_id, customer_id__in=ids)
            .select_related("product")
            .order_by("customer_id", "rank")
        )
        allowed = _product_filter(rules)
        allowed_ids = set(
            Product.objects.filter(allowed, pk__in={r.product_id for r in rows}).values_list("pk", flat=True)
        )
        for row in rows:
            bucket = result[row.customer_id]
            if row.product_id in allowed_ids and len(bucket) < rules.n:
                bucket.append(product_card(row.product, score=row.score, explanation=row.explanation or {}))
    if any(len(v) < rules.n for v in result.values()):
        purchased = _recent_purchases(ids)
        fallback = popular_products(rules=rules, limit=rules.n * 3)
        for cid, bucket in result.items():
            have = {card["sku"] for card in bucket}
            for product in fallback:
                if len(bucket) >= rules.n:
                    break
                if product.sku in have or product.pk in purchased.get(cid, ()):
                    continue
                bucket.append(product_card(product, score=None, explanation={"text": "Popular right now"}))
                have.add(product.sku)
    return result


def _recent_purchases(customer_ids: list[int]) -> dict[int, set[int]]:
    bought: dict[int, set[int]] = {}
    rows = OrderLine.objects.filter(order__customer_id__in=customer_ids, quantity__gt=0).values_list(
        "order__customer_id", "product_id"
    )
    for cid, pid in rows:
        if pid is not None:
            bought.setdefault(cid, set()).add(pid)
    return bought
