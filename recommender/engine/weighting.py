"""Turning interaction events into the weighted customer × product matrix.

A purchase says more than an add-to-cart, which says more than a view; ten units say more
than one, last week says more than last year, and a return takes the credit back. The
arithmetic is linear up to the aggregation per (customer, product) so that a return of the
whole quantity cancels the purchase exactly; a concave saturation (``log1p``) is applied
afterwards so that a bulk buyer of one product does not drown everything else they bought.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.engine.types import InteractionLog, Interactions

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class EventWeights:
    """Credit per unit of each event kind; a purchase with negative quantity is a return."""

    purchase: float = 1.0
    add_to_cart: float = 0.3
    view: float = 0.05

    def of(self, kinds: np.ndarray) -> np.ndarray:
        table = {"purchase": self.purchase, "add_to_cart": self.add_to_cart, "view": self.view}
        unique, inverse = np.unique(np.asarray(kinds, dtype=str), return_inverse=True)
        unknown = [k for k in unique.tolist() if k not in table]
        if unknown:
            raise ValueError(f"unknown event kinds {unknown}; expected one of {sorted(table)}")
        return np.array([table[k] for k in unique.tolist()], dtype=np.float64)[inverse]


def recency_decay(timestamps: np.ndarray, *, now: float, half_life_days: float) -> np.ndarray:
    """Weight halves every ``half_life_days``; events "in the future" of ``now`` count fully."""
    if half_life_days <= 0:
        raise ValueError("half_life_days must be positive")
    age_days = np.maximum(now - np.asarray(timestamps, dtype=np.float64), 0.0) / SECONDS_PER_DAY
    return np.power(0.5, age_days / half_life_days)


def _index(values: np.ndarray, universe: Iterable[Hashable] | None) -> tuple[np.ndarray, np.ndarray]:
    """Ids of the universe (sorted unique values when none is given) and each value's position."""
    if universe is None:
        ids, positions = np.unique(values, return_inverse=True)
        return ids, positions.astype(np.int64)
    ids = universe if isinstance(universe, np.ndarray) else np.asarray(list(universe))
    if ids.dtype.kind in "iu" and values.dtype.kind in "iu" and len(ids) and bool(np.all(ids[1:] > ids[:-1])):
        # Sorted integer ids (database keys, as the services pass them): a binary search instead of
        # a dict over the whole universe, which a real-time request for one customer paid per call.
        found = np.minimum(np.searchsorted(ids, values), len(ids) - 1)
        return ids, np.where(ids[found] == values, found, -1).astype(np.int64)
    lookup = {v: i for i, v in enumerate(ids.tolist())}
    positions = np.fromiter((lookup.get(v, -1) for v in values.tolist()), dtype=np.int64, count=len(values))
    return ids, positions


def build_interactions(
    *,
    user_ids: Iterable[Hashable],
    item_ids: Iterable[Hashable],
    kinds: Iterable[str] | None = None,
    quantities: Iterable[float] | None = None,
    timestamps: Iterable[float] | None = None,
    weights: EventWeights | None = None,
    half_life_days: float | None = None,
    now: float | None = None,
    saturate: bool = True,
    item_universe: Iterable[Hashable] | None = None,
    user_universe: Iterable[Hashable] | None = None,
    user_segments: dict[Hashable, Hashable] | None = None,
) -> Interactions:
    """Weighted interactions from parallel arrays of events.

    ``kinds`` defaults to all purchases, ``quantities`` to one unit. With ``half_life_days``
    each event is decayed from ``now`` (default: the latest timestamp). Pairs whose net
    credit is zero or negative (everything returned) are dropped. ``item_universe`` fixes
    the product columns (so catalog products nobody bought yet exist as cold items); events
    on products outside it are ignored, as are events of customers outside ``user_universe``.

    No events at all is not an error: the result is an empty matrix over the universes
    (``0 × 0`` without them), which training refuses with ``TrainingDataError`` and which
    scores a customer without history as cold.
    """
    users = np.asarray(list(user_ids) if not isinstance(user_ids, np.ndarray) else user_ids)
    items = np.asarray(list(item_ids) if not isinstance(item_ids, np.ndarray) else item_ids)
    n = len(users)
    if len(items) != n:
        raise ValueError("user_ids and item_ids must have the same length")
    weights = weights or EventWeights()
    credit = np.ones(n) if kinds is None else weights.of(np.asarray(list(kinds)))
    if len(credit) != n:
        raise ValueError("kinds must have one value per event")
    if quantities is not None:
        q = np.asarray(
            list(quantities) if not isinstance(quantities, np.ndarray) else quantities, dtype=float
        )
        if len(q) != n:
            raise ValueError("quantities must have one value per event")
        credit = credit * q
    ts = None
    if timestamps is not None:
        ts = np.asarray(
            list(timestamps) if not isinstance(timestamps, np.ndarray) else timestamps, dtype=float
        )
        if len(ts) != n:
            raise ValueError("timestamps must have one value per event")
    if half_life_days is not None:
        if ts is None:
            raise ValueError("recency decay needs timestamps")
        reference = float(ts.max()) if now is None and n else float(now or 0.0)
        credit = credit * recency_decay(ts, now=reference, half_life_days=half_life_days)

    user_axis, rows = _index(users, user_universe)
    item_axis, cols = _index(items, item_universe)
    keep = (rows >= 0) & (cols >= 0)
    rows, cols, credit = rows[keep], cols[keep], credit[keep]
    shape = (len(user_axis), len(item_axis))
    matrix = sp.csr_matrix((credit, (rows, cols)), shape=shape, dtype=np.float64)
    matrix.sum_duplicates()
    matrix.data[matrix.data < 0] = 0.0
    last_seen = None
    if ts is not None:
        last_seen = _latest_per_pair(rows, cols, ts[keep], shape, matrix)
    positive = matrix.data > 1e-12
    if not positive.all():
        matrix.data[~positive] = 0.0
        if last_seen is not None:
            last_seen = last_seen[positive]
        matrix.eliminate_zeros()
    if saturate:
        np.log1p(matrix.data, out=matrix.data)
    segments = None
    if user_segments is not None:
        segments = np.array([user_segments.get(u) for u in user_axis.tolist()], dtype=object)
    return Interactions(
        matrix=matrix.astype(np.float32),
        user_ids=user_axis,
        item_ids=item_axis,
        last_seen_at=last_seen,
        user_segments=segments,
    )


def _latest_per_pair(
    rows: np.ndarray, cols: np.ndarray, ts: np.ndarray, shape: tuple[int, int], matrix: sp.csr_matrix
) -> np.ndarray:
    """Latest timestamp per (row, col), aligned with the canonical CSR ``matrix.data``."""
    if matrix.nnz == 0:  # no events (or none inside the universes): nothing to align
        return np.zeros(0, dtype=np.float64)
    keys = rows.astype(np.int64) * shape[1] + cols
    order = np.lexsort((ts, keys))
    keys, ts = keys[order], ts[order]
    last = np.r_[keys[1:] != keys[:-1], True]
    unique_keys, latest = keys[last], ts[last]
    csr_rows = np.repeat(np.arange(shape[0], dtype=np.int64), np.diff(matrix.indptr))
    csr_keys = csr_rows * shape[1] + matrix.indices
    return latest[np.searchsorted(unique_keys, csr_keys)]


def interactions_from_log(
    log: InteractionLog,
    *,
    item_universe: Iterable[Hashable] | None = None,
    user_universe: Iterable[Hashable] | None = None,
) -> Interactions:
    """Binary interactions: every row of a log is one positive interaction, whatever its rating.

    That is the settled evaluation rule: a 1-star rating still says the customer chose to
    watch or buy the item, and ranking metrics are about what they choose next.
    """
    interactions = build_interactions(
        user_ids=log.user_ids,
        item_ids=log.item_ids,
        timestamps=log.timestamps,
        saturate=False,
        item_universe=item_universe,
        user_universe=user_universe,
    )
    interactions.matrix.data[:] = 1.0
    return interactions
