"""Business rules applied at recommend time, on whole chunks of score rows at once.

Every rule is a mask or an addition on the ``(customers, products)`` score matrix, applied
before the top-n selection, so that a campaign's filters cost a few vectorised operations
per chunk and never a Python loop over products. Diversity (MMR) re-ranks a candidate pool
a few times larger than n, vectorised over the chunk's customers.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.engine.types import Interactions, ItemCatalog

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class RecommendationRules:
    """What a campaign (or the default config) allows in a customer's list.

    * ``exclude_seen``: drop products the customer already bought or interacted with …
    * ``repurchase_window_days``: … unless their last interaction is older than this many
      days (consumables come back); ``None`` means never recommend them again.
    * ``now``: the reference time of the window (default: the latest interaction known).
    * ``exclude_out_of_stock`` / ``exclude_inactive``: use the catalog's flags.
    * ``categories`` / ``brands``: when set, only products in these.
    * ``exclude_items``: product ids never to show (e.g. the product of the page).
    * ``diversity``: 0 keeps the pure relevance order; towards 1 MMR trades relevance for
      products unlike the ones already picked (MMR's lambda is ``1 - diversity``).
    * ``promoted_boost``: a promoted product gains this share of the customer's best score
      (times the product's ``promoted`` weight in the catalog).
    """

    exclude_seen: bool = True
    repurchase_window_days: float | None = None
    now: float | None = None
    exclude_out_of_stock: bool = True
    exclude_inactive: bool = True
    categories: frozenset[str] | None = None
    brands: frozenset[str] | None = None
    exclude_items: frozenset[Hashable] = frozenset()
    diversity: float = 0.0
    candidate_pool: int = 5
    promoted_boost: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.diversity <= 1.0:
            raise ValueError("diversity must be between 0 and 1")
        if self.candidate_pool < 1:
            raise ValueError("candidate_pool must be at least 1")
        if self.repurchase_window_days is not None and self.repurchase_window_days < 0:
            raise ValueError("repurchase_window_days must not be negative")


DEFAULT_RULES = RecommendationRules()


class RuleContext:
    """The rules resolved against one model's products: masks computed once per request."""

    def __init__(
        self,
        rules: RecommendationRules,
        *,
        interactions: Interactions,
        catalog: ItemCatalog | None,
        extra_excluded: Iterable[Hashable] = (),
    ) -> None:
        self.rules = rules
        self.interactions = interactions
        n_items = interactions.n_items
        allowed = np.ones(n_items, dtype=bool)
        if catalog is not None:
            if rules.exclude_out_of_stock and catalog.in_stock is not None:
                allowed &= np.asarray(catalog.in_stock, dtype=bool)
            if rules.exclude_inactive and catalog.active is not None:
                allowed &= np.asarray(catalog.active, dtype=bool)
            if rules.categories is not None:
                if catalog.categories is None:
                    raise ValueError("a category filter needs product categories in the catalog")
                allowed &= np.isin(np.asarray(catalog.categories, dtype=object), list(rules.categories))
            if rules.brands is not None:
                if catalog.brands is None:
                    raise ValueError("a brand filter needs product brands in the catalog")
                allowed &= np.isin(np.asarray(catalog.brands, dtype=object), list(rules.brands))
        elif rules.categories is not None or rules.brands is not None:
            raise ValueError("category and brand filters need an item catalog")
        excluded = set(rules.exclude_items) | set(extra_excluded)
        if excluded:
            cols = interactions.item_columns(list(excluded))
            allowed[cols[cols >= 0]] = False
        self.blocked = np.flatnonzero(~allowed)
        self.allowed = np.flatnonzero(allowed)
        self._positions = None
        self.promoted = None
        if rules.promoted_boost and catalog is not None and catalog.promoted is not None:
            promoted = np.asarray(catalog.promoted, dtype=np.float32)
            if promoted.any():
                self.promoted = promoted
        self.window_start = None
        if rules.repurchase_window_days is not None and interactions.last_seen_at is not None:
            now = rules.now
            if now is None:
                now = float(interactions.last_seen_at.max()) if len(interactions.last_seen_at) else 0.0
            self.window_start = now - rules.repurchase_window_days * SECONDS_PER_DAY

    def apply(
        self,
        scores: np.ndarray,
        histories: sp.csr_matrix,
        history_times: np.ndarray | None = None,
        *,
        columns: np.ndarray | None = None,
    ) -> None:
        """Mask and boost ``scores`` in place for the customers of one chunk.

        ``history_times`` (aligned with ``histories.data``, NaN where unknown) lets the
        repurchase window re-admit products bought long enough ago. ``columns``: the scores
        are of these products only (``self.allowed``: the blocked ones were left out).
        """
        if columns is None and len(self.blocked):
            scores[:, self.blocked] = -np.inf
        if self.rules.exclude_seen:
            lengths = np.diff(histories.indptr)
            rows = np.repeat(np.arange(len(lengths)), lengths)
            cols = histories.indices
            if self.window_start is not None and history_times is not None:
                # NaN (time unknown) compares False, so such products stay excluded.
                recent = ~(history_times < self.window_start)
                rows, cols = rows[recent], cols[recent]
            if columns is not None:
                cols = self.positions(columns)[cols]
                rows, cols = rows[cols >= 0], cols[cols >= 0]
            scores[rows, cols] = -np.inf
        if self.promoted is not None:
            promoted = self.promoted if columns is None else self.promoted[columns]
            finite = np.where(np.isfinite(scores), np.abs(scores), 0.0)
            scale = finite.max(axis=1, keepdims=True)
            scale[scale == 0] = 1.0
            scores += (self.rules.promoted_boost * scale) * promoted

    def positions(self, columns: np.ndarray) -> np.ndarray:
        """Each product's position among ``columns``, -1 if it is not one of them."""
        if self._positions is None or self._positions[0] is not columns:
            where = np.full(self.interactions.n_items, -1, dtype=np.int64)
            where[columns] = np.arange(len(columns))
            self._positions = (columns, where)
        return self._positions[1]


def mmr_rerank(
    columns: np.ndarray, scores: np.ndarray, item_vectors: np.ndarray, n: int, diversity: float
) -> tuple[np.ndarray, np.ndarray]:
    """Maximal marginal relevance over each row's candidates, vectorised across rows.

    At each of the n steps every row picks the candidate maximising
    ``(1 - diversity) · relevance − diversity · max cosine to the products already picked``,
    relevance being the score rescaled to [0, 1] within the row's candidates.
    """
    m, c = columns.shape
    n = min(n, c)
    valid = columns >= 0
    if diversity <= 0 or c <= 1:
        return columns[:, :n], scores[:, :n]
    lam = 1.0 - diversity
    vectors = np.asarray(item_vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    emb = unit[np.where(valid, columns, 0)]  # (m, c, d)
    sims = np.matmul(emb, emb.transpose(0, 2, 1))  # (m, c, c)
    finite_scores = np.where(valid, scores, np.nan)
    lo = np.nanmin(np.where(valid, finite_scores, np.inf), axis=1, keepdims=True)
    hi = np.nanmax(np.where(valid, finite_scores, -np.inf), axis=1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    relevance = np.where(valid, (np.nan_to_num(finite_scores) - lo) / span, -np.inf)
    max_sim = np.zeros((m, c), dtype=np.float32)
    available = valid.copy()
    picked = np.full((m, n), -1, dtype=np.int64)
    rows = np.arange(m)
    for step in range(n):
        objective = np.where(available, lam * relevance - diversity * max_sim, -np.inf)
        choice = np.argmax(objective, axis=1)
        has_choice = available[rows, choice]
        picked[:, step] = np.where(has_choice, choice, -1)
        available[rows, choice] = False
        max_sim = np.maximum(max_sim, sims[rows, choice])
    safe = np.maximum(picked, 0)
    out_cols = np.where(picked >= 0, np.take_along_axis(columns, safe, axis=1), -1).astype(np.int32)
    out_scores = np.where(picked >= 0, np.take_along_axis(scores, safe, axis=1), np.nan).astype(np.float32)
    return out_cols, out_scores
