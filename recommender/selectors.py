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
from recommender.explanations import stored_explanation
from recommender.models import Recommendation, RecommenderConfig

POPULARITY_WINDOW_DAYS = 30
CARD_FIELDS = ("sku", "name", "url", "image_url", "price", "currency", "category_path", "brand")
# What a stored row needs to become a card (the product's long description stays in the database).
STORED_ROW_FIELDS = (
    "customer",
    "model_version",
    "product",
    "rank",
    "score",
    "explanation",
    "reason",
    "because_product",
    "because_product__sku",
    "because_product__name",
    *(f"product__{name}" for name in CARD_FIELDS),
)


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


def _product_filter(rules: RecommendationRules, prefix: str = "") -> Q:
    """The rules as a filter on products (``prefix="product__"`` filters rows that point at one)."""

    def q(**lookups) -> Q:
        return Q(**{prefix + name: value for name, value in lookups.items()})

    condition = q(active=True)
    if rules.in_stock_only:
        condition &= q(stock__isnull=True) | q(stock__gt=0)
    if rules.categories:
        category_q = Q()
        for path in rules.categories:
            category_q |= q(category_path=path) | q(category_path__startswith=f"{path} > ")
        condition &= category_q
    if rules.brands:
        condition &= q(brand__in=rules.brands)
    if rules.exclude_skus:
        condition &= ~q(sku__in=rules.exclude_skus)
    return condition


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
            .filter(_product_filter(rules, prefix="product__"))
            .select_related("product", "because_product")
            .only(*STORED_ROW_FIELDS)
            .order_by("customer_id", "rank")
        )
        for row in rows:
            bucket = result[row.customer_id]
            if len(bucket) < rules.n:
                bucket.append(product_card(row.product, score=row.score, explanation=stored_explanation(row)))
    top_up_with_popular(result, rules=rules)
    return result


def top_up_with_popular(lists: dict[int, list[dict]], *, rules: RecommendationRules) -> None:
    """Fill lists shorter than ``rules.n`` with best sellers the customer has not bought."""
    if not any(len(v) < rules.n for v in lists.values()):
        return
    purchased = _recent_purchases([cid for cid, bucket in lists.items() if len(bucket) < rules.n])
    fallback = popular_products(rules=rules, limit=rules.n * 3)
    for cid, bucket in lists.items():
        have = {card["sku"] for card in bucket}
        for product in fallback:
            if len(bucket) >= rules.n:
                break
            if product.sku in have or product.pk in purchased.get(cid, ()):
                continue
            bucket.append(product_card(product, score=None, explanation={"text": "Popular right now"}))
            have.add(product.sku)


def _recent_purchases(customer_ids: list[int]) -> dict[int, set[int]]:
    bought: dict[int, set[int]] = {}
    rows = OrderLine.objects.filter(order__customer_id__in=customer_ids, quantity__gt=0).values_list(
        "order__customer_id", "product_id"
    )
    for cid, pid in rows:
        if pid is not None:
            bought.setdefault(cid, set()).add(pid)
    return bought
