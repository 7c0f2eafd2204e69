"""Recommendations for one customer or product, as the API serves them.

Stored rows of the active version first (through the campaigns' selector, so the API and a
campaign show the same list); customers without stored rows are scored in real time against
the active model (their current history folded in); unknown customers get the cold-start list;
without any active model, the popularity list.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import NamedTuple

import numpy as np
from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Q

from catalog.models import Product
from customers.models import Customer
from recommender import selectors
from recommender.engine.base import BaseRecommender
from recommender.engine.types import REASON_TEXT, Reason
from recommender.explanations import REASON_CODES, explanation_body, stored_explanation
from recommender.models import ModelVersion, Recommendation, RecommenderConfig
from recommender.services import artifacts, data
from recommender.services.scoring import rules_for

FLAGS_TTL_SECONDS = 60.0
UNKNOWN_CUSTOMER = -1
_flags: dict[int, float] = {}
_flags_lock = threading.Lock()


class ConfigNotFound(LookupError):
    pass


def resolve_config(name: str | None) -> RecommenderConfig | None:
    if name:
        config = RecommenderConfig.objects.filter(name=name).select_related("active_version").first()
        if config is None:
            raise ConfigNotFound(name)
        return config
    return selectors.default_config()


def serving_model(version: ModelVersion) -> BaseRecommender:
    """The cached model, its stock and activity flags re-read at most once a minute."""
    model = artifacts.load_model(version=version)
    now = time.monotonic()
    with _flags_lock:
        stale = now - _flags.get(version.pk, -1e9) > FLAGS_TTL_SECONDS
        if stale:
            _flags[version.pk] = now
    if stale:
        model.num_threads = 1
        fresh = data.catalog_flags(model.interactions_.item_ids)
        base = model.catalog_ if model.catalog_ is not None else fresh
        model.catalog_ = dataclasses.replace(base, in_stock=fresh.in_stock, active=fresh.active)
    return model


def _allowed(*, category: str | None, in_stock_only: bool) -> Q:
    rules = selectors.RecommendationRules(
        categories=(category,) if category else (), in_stock_only=in_stock_only
    )
    return selectors._product_filter(rules)


def _explanation(reason: int, because_pk: int | None, names: dict[int, tuple[str, str]]) -> dict:
    reason_enum = Reason(int(reason))
    template = REASON_TEXT[reason_enum]
    body: dict = {"reason": REASON_CODES[reason_enum]}
    if because_pk is not None and because_pk in names and "{item}" in template:
        sku, name = names[because_pk]
        body.update(text=template.format(item=name or sku), because=[sku])
    else:
        body["text"] = REASON_TEXT[Reason.MATCHES_YOUR_TASTE] if "{item}" in template else template
    return body


class _CardRow(NamedTuple):
    """The product columns a card shows (``selectors.product_card`` reads them by name)."""

    sku: str
    name: str
    url: str
    image_url: str
    price: object
    currency: str
    category_path: str
    brand: str


def _request_sql(*, by_name: bool) -> str:
    config, version = RecommenderConfig._meta.db_table, Recommendation._meta.db_table
    customer, product = Customer._meta.db_table, Product._meta.db_table
    which = "cfg.name = %s" if by_name else "cfg.is_default"
    # One row per stored recommendation, or one row with empty recommendation columns when the
    # customer has none (unknown customer, no stored rows, no active version); no row at all
    # when there is no such config. The customer join repeats the default manager's filter (no
    # soft-deleted or erased customers); `allowed` is selectors._product_filter with the
    # config's stock rule.
    return f"""
        SELECT cfg.id, cfg.updated_at, cfg.active_version_id, cfg.in_stock_only, c.id, r.rank,
               r.score, r.explanation,
               p.sku, p.name, p.url, p.image_url, p.price, p.currency, p.category_path, p.brand,
               (p.active
                AND (NOT cfg.in_stock_only OR p.stock IS NULL OR p.stock > 0)
                AND (%s IS NULL OR p.category_path = %s OR p.category_path LIKE %s ESCAPE '\\')),
               r.reason, r.because_product_id, bp.sku, bp.name
        FROM {config} cfg
        LEFT JOIN {customer} c
               ON c.external_id = %s AND c.deleted_at IS NULL AND c.erased_at IS NULL
        LEFT JOIN {version} r ON r.model_version_id = cfg.active_version_id AND r.customer_id = c.id
        LEFT JOIN {product} p ON p.id = r.product_id
        LEFT JOIN {product} bp ON bp.id = r.because_product_id
        WHERE {which}
        ORDER BY r.rank
    """  # noqa: S608 - table names from model metadata; every value is a parameter


CONFIG_TTL_SECONDS = 60.0
_configs: dict[int, tuple[float, RecommenderConfig]] = {}


def _config_as_of(config_id: int, updated_at, active_version_id: int | None) -> RecommenderConfig:
    """The config with its active version, reloaded when the row changed since it was cached.

    ``updated_at`` moves on every save, promote and rollback, and the active version is compared
    as well, so a cached object is never older than the row the caller just read; a change made
    by a bare queryset update of other columns is picked up within ``CONFIG_TTL_SECONDS``.
    """
    now = time.monotonic()
    loaded_at, cached = _configs.get(config_id, (0.0, None))
    if (
        cached is None
        or now - loaded_at > CONFIG_TTL_SECONDS
        or cached.updated_at != updated_at
        or cached.active_version_id != active_version_id
    ):
        cached = RecommenderConfig.objects.select_related("active_version").get(pk=config_id)
        _configs[config_id] = (now, cached)
    return cached


def recommendations_for_request(
    *, external_id: str, n: int, category: str | None = None, config_name: str | None = None
) -> dict:
    """What the API answers for a customer, in as few round trips as the case allows.

    One hand-written statement reads the config, the customer and the customer's stored rows of
    the active version with their products (each row says whether its product passes today's
    rules): a customer with stored rows costs that one query (the API's hottest path; the ORM's
    compilation of the same query cost more than running it). A customer without stored rows is
    scored in real time from there (plus their history and the products shown), an unknown one
    gets the cold-start list. Raises ``ConfigNotFound`` for an unknown ``config_name``.
    """
    prefix = None if category is None else connection.ops.prep_for_like_query(category) + " > %"
    params = [category, category, prefix, external_id]
    if config_name:
        params.append(config_name)
    with connection.cursor() as cursor:
        cursor.execute(_request_sql(by_name=bool(config_name)), params)
        rows = cursor.fetchall()
    if not rows:
        if config_name:
            raise ConfigNotFound(config_name)
        return customer_recommendations(external_id=external_id, n=n, category=category, config=None)
    config_id, updated_at, version_id, in_stock_only, customer_pk = rows[0][:5]
    in_stock_only = bool(in_stock_only)
    if rows[0][5] is None:  # no stored rows
        config = _config_as_of(config_id, updated_at, version_id)
        result = {"customer": external_id, "model_version": version_id, "source": "popular", "items": []}
        _unstored(result, config=config, customer_pk=customer_pk, n=n, category=category)
        return result
    cards = []
    for row in rows:
        if row[16] and len(cards) < n:
            explanation = row[7]
            if isinstance(explanation, str):  # psycopg2 under Django hands jsonb over as text
                explanation = json.loads(explanation)
            if not explanation and (row[17] or row[18] is not None):
                label = (row[19], row[20]) if row[19] is not None else None
                explanation = explanation_body(row[17], row[18], label)
            cards.append(
                selectors.product_card(_CardRow(*row[8:16]), score=row[6], explanation=explanation or {})
            )
    if len(cards) < n:
        rules = selectors.RecommendationRules(
            n=n, categories=(category,) if category else (), in_stock_only=in_stock_only
        )
        selectors.top_up_with_popular({customer_pk: cards}, rules=rules)
    return {"customer": external_id, "model_version": version_id, "source": "stored", "items": cards}


def customer_recommendations(
    *, external_id: str, n: int, category: str | None = None, config: RecommenderConfig | None = None
) -> dict:
    in_stock_only = config.in_stock_only if config is not None else True
    customer_pk = Customer.objects.filter(external_id=external_id).values_list("pk", flat=True).first()
    version_id = config.active_version_id if config is not None else None
    result = {"customer": external_id, "model_version": version_id, "source": "popular", "items": []}
    if (
        customer_pk is not None
        and version_id is not None
        and Recommendation.objects.filter(model_version_id=version_id, customer_id=customer_pk).exists()
    ):
        rules = selectors.RecommendationRules(
            n=n, categories=(category,) if category else (), in_stock_only=in_stock_only
        )
        cards = selectors.recommendations_for(customer_ids=[customer_pk], rules=rules, config=config)
        result.update(source="stored", items=cards[customer_pk])
        return result
    _unstored(result, config=config, customer_pk=customer_pk, n=n, category=category)
    return result


def _unstored(result: dict, *, config, customer_pk: int | None, n: int, category: str | None) -> None:
    """Real-time scoring (a known customer) or the cold-start list (unknown), then best sellers."""
    in_stock_only = config.in_stock_only if config is not None else True
    if config is not None and config.active_version_id is not None:
        model = serving_model(config.active_version)
        result["source"] = "realtime" if customer_pk is not None else "cold_start"
        result["items"] = _realtime(
            model, config=config, customer_pk=customer_pk, n=n, category=category, in_stock_only=in_stock_only
        )
    if len(result["items"]) < n:
        _top_up(result["items"], customer_pk=customer_pk, n=n, category=category, in_stock_only=in_stock_only)


def _realtime(model, *, config, customer_pk, n: int, category: str | None, in_stock_only: bool) -> list[dict]:
    interactions = model.interactions_
    histories = None
    ids = np.asarray([UNKNOWN_CUSTOMER if customer_pk is None else customer_pk], dtype=np.int64)
    if customer_pk is not None and interactions.user_index.get(customer_pk) is None:
        histories = data.history_rows(customer_ids=[customer_pk], item_ids=interactions.item_ids)
    pool = n if not category else max(n * 5, 100)
    batch = model.recommend(ids, pool, rules=rules_for(config), histories=histories)
    cols = batch.items[0]
    keep = cols >= 0
    item_ids = np.asarray(batch.item_ids)
    pks = item_ids[cols[keep]].astype(np.int64).tolist()
    scores = batch.scores[0][keep].tolist()
    reasons = batch.reasons[0][keep].tolist()
    because = [int(item_ids[b]) if b >= 0 else None for b in batch.because[0][keep].tolist()]
    # One query for the products shown and the products that explain them.
    products = (
        Product.objects.filter(pk__in={*pks, *(b for b in because if b is not None)})
        .annotate(
            allowed=ExpressionWrapper(
                _allowed(category=category, in_stock_only=in_stock_only), output_field=BooleanField()
            )
        )
        .only("pk", *selectors.CARD_FIELDS)
    )
    allowed, names = {}, {}
    for p in products:
        names[p.pk] = (p.sku, p.name)
        if p.allowed:
            allowed[p.pk] = p
    cards = []
    for pk, score, reason, source in zip(pks, scores, reasons, because, strict=True):
        product = allowed.get(pk)
        if product is None:
            continue
        cards.append(
            selectors.product_card(
                product, score=float(score), explanation=_explanation(reason, source, names)
            )
        )
        if len(cards) >= n:
            break
    return cards


def _top_up(cards: list[dict], *, customer_pk, n: int, category: str | None, in_stock_only: bool) -> None:
    rules = selectors.RecommendationRules(
        n=n, categories=(category,) if category else (), in_stock_only=in_stock_only
    )
    bought: set[int] = set()
    if customer_pk is not None:
        bought = selectors._recent_purchases([customer_pk]).get(customer_pk, set())
    have = {card["sku"] for card in cards}
    for product in selectors.popular_products(rules=rules, limit=n * 3):
        if len(cards) >= n:
            break
        if product.sku in have or product.pk in bought:
            continue
        cards.append(
            selectors.product_card(
                product, score=None, explanation={"reason": "popular", "text": "Popular right now"}
            )
        )
        have.add(product.sku)


def _product_and_config_sql(*, by_name: bool) -> str:
    config, product = RecommenderConfig._meta.db_table, Product._meta.db_table
    which = "cfg.name = %s" if by_name else "cfg.is_default"
    return f"""
        SELECT p.id, p.sku, p.name, p.category_path, cfg.id, cfg.updated_at, cfg.active_version_id
        FROM {product} p
        LEFT JOIN {config} cfg ON {which}
        WHERE p.sku = %s
    """  # noqa: S608 - table names from model metadata; every value is a parameter


def similar_for_request(*, sku: str, n: int, config_name: str | None = None) -> dict | None:
    """What the API answers for a product page: the product and the config in one query.

    ``None`` when there is no such product; ``ConfigNotFound`` for an unknown ``config_name``.
    The config object comes from the per-process cache, as of the row just read.
    """
    params = [config_name, sku] if config_name else [sku]
    with connection.cursor() as cursor:
        cursor.execute(_product_and_config_sql(by_name=bool(config_name)), params)
        row = cursor.fetchone()
    if row is None:
        if config_name and not RecommenderConfig.objects.filter(name=config_name).exists():
            raise ConfigNotFound(config_name)  # a bad parameter is reported before a missing product
        return None
    pk, product_sku, name, category_path, config_id, updated_at, version_id = row
    if config_id is None and config_name:
        raise ConfigNotFound(config_name)
    config = None if config_id is None else _config_as_of(config_id, updated_at, version_id)
    product = Product(pk=pk, sku=product_sku, name=name, category_path=category_path)
    return similar_products(product=product, n=n, config=config)


def similar_products(*, product: Product, n: int, config: RecommenderConfig | None = None) -> dict:
    """Products most like this one by the active model; same-category best sellers otherwise."""
    result = {"sku": product.sku, "model_version": None, "source": "category", "items": []}
    in_stock_only = config.in_stock_only if config is not None else True
    if config is not None and config.active_version_id is not None:
        model = serving_model(config.active_version)
        similar = model.similar_items(np.asarray([product.pk], dtype=np.int64), n * 3)
        pairs = [(int(pk), score) for pk, score in similar.to_lists()[0] if np.isfinite(score)]
        if pairs:
            allowed = {
                p.pk: p
                for p in Product.objects.filter(
                    _allowed(category=None, in_stock_only=in_stock_only), pk__in=[pk for pk, _ in pairs]
                )
                .exclude(pk=product.pk)
                .only("pk", *selectors.CARD_FIELDS)
            }
            text = REASON_TEXT[Reason.SIMILAR_PRODUCT].format(item=product.name or product.sku)
            for pk, score in pairs:
                if pk in allowed and len(result["items"]) < n:
                    result["items"].append(
                        selectors.product_card(
                            allowed[pk],
                            score=float(score),
                            explanation={"reason": "similar_product", "text": text, "because": [product.sku]},
                        )
                    )
            result.update(model_version=config.active_version_id, source="model")
    if len(result["items"]) < n and product.category_path:
        rules = selectors.RecommendationRules(
            n=n, categories=(product.category_path,), in_stock_only=in_stock_only, exclude_skus=(product.sku,)
        )
        have = {card["sku"] for card in result["items"]}
        for peer in selectors.popular_products(rules=rules, limit=n * 2):
            if len(result["items"]) >= n:
                break
            if peer.sku not in have:
                result["items"].append(
                    selectors.product_card(
                        peer,
                        score=None,
                        explanation={"reason": "same_category", "text": f"Also in {product.category_path}"},
                    )
                )
                have.add(peer.sku)
    return result


def preview_for_customer(*, version: ModelVersion, external_id: str, n: int = 10) -> dict:
    """What one version (active or not) gives a customer: its stored rows, else real-time scoring."""
    config = version.config
    customer_pk = Customer.objects.filter(external_id=external_id).values_list("pk", flat=True).first()
    if customer_pk is not None:
        rows = list(
            Recommendation.objects.filter(model_version=version, customer_id=customer_pk)
            .select_related("product", "because_product")
            .order_by("rank")[:n]
        )
        if rows:
            items = [
                selectors.product_card(row.product, score=row.score, explanation=stored_explanation(row))
                for row in rows
            ]
            return {"source": "stored", "items": items}
    model = serving_model(version)
    items = _realtime(
        model, config=config, customer_pk=customer_pk, n=n, category=None, in_stock_only=config.in_stock_only
    )
    return {
        "source": "realtime" if customer_pk is not None else "cold_start (unknown customer)",
        "items": items,
    }
