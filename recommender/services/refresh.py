"""Incremental refresh: new lists for customers whose behaviour changed since the last scoring.

The ingest signals note the customers in ``TouchedCustomer`` (the table is the queue: a lost
task or a Redis restart loses nothing); ``refresh_touched`` (beat) drains it. A refresh scores
the customer's *current* history against the active model without retraining it: factor
models fold the history in (ALS's exact user step, implicit's ``recalculate_user``),
item-based models score the new history directly. The customer's rows of the active version
are replaced in one transaction.
"""

from __future__ import annotations

import numpy as np
from django.db import transaction
from django.utils import timezone

from customers.models import Event, EventType, Order
from recommender.models import RecommenderConfig, TouchedCustomer
from recommender.services import data
from recommender.services.scoring import _product_exists, prepare_model, rules_for, write_batch

REFRESH_BATCH = 2000


def touch_customers(*, customer_ids) -> int:
    ids = sorted({int(c) for c in customer_ids})
    if not ids:
        return 0
    now = timezone.now()
    TouchedCustomer.objects.bulk_create(
        [TouchedCustomer(customer_id=c, touched_at=now) for c in ids],
        update_conflicts=True,
        unique_fields=["customer"],
        update_fields=["touched_at"],
    )
    return len(ids)


def touch_for_events(*, event_ids: list[int]) -> int:
    kinds = [EventType.VIEW, EventType.ADD_TO_CART, EventType.PURCHASE]
    ids = Event.objects.filter(pk__in=event_ids, type__in=kinds, product__isnull=False).values_list(
        "customer_id", flat=True
    )
    return touch_customers(customer_ids=set(ids))


def touch_for_orders(*, order_ids: list[int]) -> int:
    return touch_customers(
        customer_ids=set(Order.objects.filter(pk__in=order_ids).values_list("customer_id", flat=True))
    )


def refresh_customers(*, customer_ids, config_id: int | None = None) -> dict:
    """Re-score the given customers with every active model (or one config's); returns row counts."""
    ids = sorted({int(c) for c in customer_ids})
    configs = RecommenderConfig.objects.filter(active_version__isnull=False).select_related("active_version")
    if config_id is not None:
        configs = configs.filter(pk=config_id)
    written: dict[str, int] = {}
    for config in configs:
        version = config.active_version
        model = prepare_model(version)
        exists = _product_exists(model.interactions_.item_ids)
        rules = rules_for(config)
        total = 0
        for start in range(0, len(ids), REFRESH_BATCH):
            chunk = ids[start : start + REFRESH_BATCH]
            histories = data.history_rows(customer_ids=chunk, item_ids=model.interactions_.item_ids)
            batch = model.recommend(
                np.asarray(chunk, dtype=np.int64), config.items_per_customer, rules=rules, histories=histories
            )
            with transaction.atomic():
                total += write_batch(version_id=version.pk, batch=batch, product_exists=exists)
        written[config.name] = total
    return {"customers": len(ids), "rows": written}


def refresh_touched(*, limit: int = 10_000) -> dict:
    """Drain up to ``limit`` touched customers (oldest first); customers touched again meanwhile stay."""
    cutoff = timezone.now()
    ids = list(
        TouchedCustomer.objects.filter(touched_at__lte=cutoff)
        .order_by("touched_at")
        .values_list("customer_id", flat=True)[:limit]
    )
    if not ids:
        return {"customers": 0, "rows": {}}
    result = refresh_customers(customer_ids=ids)
    TouchedCustomer.objects.filter(customer_id__in=ids, touched_at__lte=cutoff).delete()
    return result
