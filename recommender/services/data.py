"""What the recommender learns from, read straight into numpy arrays.

Orders and events are read with one SQL statement each (no model instances: three million
rows as ORM objects would cost minutes and gigabytes) and handed to the engine's weighting
(`recommender.engine.weighting`), which does purchases > add-to-cart > views, quantity,
recency decay and returns. A return line carries a negative quantity, so the same sum that
credits a purchase takes the credit back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.db import connection

from catalog.models import Product
from customers.models import Event, Order, OrderLine
from recommender.engine.types import InteractionLog, Interactions, ItemCatalog
from recommender.engine.weighting import EventWeights, build_interactions

DEFAULT_HALF_LIFE_DAYS = 365.0


def event_weights() -> EventWeights:
    overrides = getattr(settings, "RECOMMENDER_EVENT_WEIGHTS", None) or {}
    return EventWeights(**overrides)


def half_life_days() -> float | None:
    return getattr(settings, "RECOMMENDER_HALF_LIFE_DAYS", DEFAULT_HALF_LIFE_DAYS)


@dataclass(frozen=True, eq=False)
class RawInteractions:
    """One row per order line or behavioural event: customer pk, product pk, credit, time.

    ``credit`` is already the event kind's weight times the quantity (negative for returns);
    ``positive`` marks the rows that count as a positive interaction for evaluation splits.
    """

    customers: np.ndarray
    products: np.ndarray
    credit: np.ndarray
    timestamps: np.ndarray
    positive: np.ndarray

    def __len__(self) -> int:
        return len(self.customers)

    def log(self) -> InteractionLog:
        """Positive interactions only, as the evaluation splits expect."""
        keep = self.positive
        return InteractionLog(
            user_ids=self.customers[keep], item_ids=self.products[keep], timestamps=self.timestamps[keep]
        )


def _epoch(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM {column})::float8"
    return f"CAST(strftime('%%s', {column}) AS REAL)"


def _in_clause(column: str, ids: list[int] | None) -> tuple[str, list]:
    if ids is None:
        return "", []
    if connection.vendor == "postgresql":
        return f" AND {column} = ANY(%s)", [list(ids)]
    if not ids:
        return " AND 1 = 0", []
    return f" AND {column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def read_raw_interactions(*, customer_ids: Iterable[int] | None = None) -> RawInteractions:
    """Order lines (sales and returns) and view / add-to-cart events, optionally for some customers.

    Purchase *events* are left out: the order lines are the record of what was bought, and a
    shop that reports both would otherwise be counted twice.
    """
    ids = None if customer_ids is None else [int(c) for c in customer_ids]
    weights = event_weights()
    line, order, event = OrderLine._meta.db_table, Order._meta.db_table, Event._meta.db_table
    where_orders, params_orders = _in_clause("o.customer_id", ids)
    where_events, params_events = _in_clause("e.customer_id", ids)
    orders_sql = (
        f"SELECT o.customer_id, l.product_id, l.quantity, {_epoch('o.placed_at')} "  # noqa: S608
        f"FROM {line} l JOIN {order} o ON o.id = l.order_id "
        f"WHERE l.product_id IS NOT NULL{where_orders}"
    )
    events_sql = (
        f"SELECT e.customer_id, e.product_id, e.quantity, {_epoch('e.occurred_at')} "  # noqa: S608
        f"FROM {event} e WHERE e.type = %s AND e.product_id IS NOT NULL{where_events}"
    )
    kinds = (("view", weights.view), ("add_to_cart", weights.add_to_cart))
    parts = []
    with connection.cursor() as cursor:
        if ids is not None:
            # A few customers (real-time scoring, refresh): one round trip for the three reads.
            tagged = " UNION ALL ".join(
                [f"SELECT 0, * FROM ({orders_sql}) AS o0"]  # noqa: S608
                + [f"SELECT {n}, * FROM ({events_sql}) AS e{n}" for n in (1, 2)]  # noqa: S608
            )
            params = [*params_orders]
            for kind, _ in kinds:
                params += [kind, *params_events]
            cursor.execute(f"{tagged} ORDER BY 1", params)  # noqa: S608
            rows = cursor.fetchall()
            by_kind: list[list[tuple]] = [[], [], []]
            for row in rows:
                by_kind[row[0]].append(row[1:])
            parts.append(_columns(by_kind[0], weight=weights.purchase))
            for n, (_, weight) in enumerate(kinds, start=1):
                parts.append(_columns(by_kind[n], weight=weight))
        else:
            cursor.execute(orders_sql, params_orders)
            parts.append(_columns(cursor.fetchall(), weight=weights.purchase))
            for kind, weight in kinds:
                cursor.execute(events_sql, [kind, *params_events])
                parts.append(_columns(cursor.fetchall(), weight=weight))
    return RawInteractions(
        customers=np.concatenate([p[0] for p in parts]),
        products=np.concatenate([p[1] for p in parts]),
        credit=np.concatenate([p[2] for p in parts]),
        timestamps=np.concatenate([p[3] for p in parts]),
        positive=np.concatenate([p[2] > 0 for p in parts]),
    )


def _columns(rows: list[tuple], *, weight: float) -> tuple[np.ndarray, ...]:
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0), np.zeros(0)
    customers, products, quantities, stamps = zip(*rows, strict=True)
    quantity = np.asarray(quantities, dtype=np.float64)
    quantity[quantity == 0] = 1.0
    return (
        np.asarray(customers, dtype=np.int64),
        np.asarray(products, dtype=np.int64),
        quantity * weight,
        np.asarray(stamps, dtype=np.float64),
    )


def product_catalog() -> ItemCatalog:
    """Every product with its texts (content model, TF-IDF) and flags (business rules)."""
    rows = list(
        Product.objects.order_by("pk").values_list(
            "pk", "name", "description", "category_path", "brand", "stock", "active"
        )
    )
    if not rows:
        return ItemCatalog(item_ids=np.zeros(0, dtype=np.int64))
    pks, names, descriptions, categories, brands, stock, active = zip(*rows, strict=True)
    return ItemCatalog(
        item_ids=np.asarray(pks, dtype=np.int64),
        names=list(names),
        descriptions=list(descriptions),
        categories=list(categories),
        brands=list(brands),
        in_stock=np.asarray([s is None or s > 0 for s in stock], dtype=bool),
        active=np.asarray(active, dtype=bool),
    )


def catalog_flags(item_ids: np.ndarray) -> ItemCatalog:
    """Current stock and activity for the model's products (they change faster than models)."""
    flags = {
        pk: (stock is None or stock > 0, active)
        for pk, stock, active in Product.objects.values_list("pk", "stock", "active")
    }
    ids = np.asarray(item_ids)
    in_stock = np.fromiter((flags.get(int(i), (False, False))[0] for i in ids), dtype=bool, count=len(ids))
    active = np.fromiter((flags.get(int(i), (False, False))[1] for i in ids), dtype=bool, count=len(ids))
    return ItemCatalog(item_ids=ids, in_stock=in_stock, active=active)


def _reference_time(raw: RawInteractions) -> float:
    """Decay from the newest interaction, not from the clock.

    A shop's data ends about now, so this is the same thing in production; an older export (a
    history loaded for a backtest, the 2010 demo sample) keeps its relative weights instead of
    shrinking them all towards zero, which would flatten ALS's confidences into popularity.
    """
    return float(raw.timestamps.max()) if len(raw) else time.time()


def weighted_interactions(
    raw: RawInteractions,
    *,
    item_universe: Iterable[int] | None = None,
    user_universe: Iterable[int] | None = None,
    now: float | None = None,
) -> Interactions:
    return build_interactions(
        user_ids=raw.customers,
        item_ids=raw.products,
        quantities=raw.credit,
        timestamps=raw.timestamps,
        half_life_days=half_life_days(),
        now=_reference_time(raw) if now is None else now,
        item_universe=item_universe,
        user_universe=user_universe,
    )


def history_rows(*, customer_ids: list[int], item_ids: np.ndarray) -> sp.csr_matrix:
    """Current weighted histories of some customers over a model's products (for fold-in)."""
    raw = read_raw_interactions(customer_ids=customer_ids)
    interactions = weighted_interactions(raw, item_universe=item_ids, user_universe=customer_ids)
    return interactions.matrix
