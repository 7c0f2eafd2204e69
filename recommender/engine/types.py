"""Inputs and results of the recommender engine as frozen dataclasses.

The engine never sees ORM rows: the Django side turns events and orders into an
``InteractionLog`` (one row per event) or directly into ``Interactions`` (the weighted
customer × product matrix), and gets ``RecommendationBatch`` arrays back, which it can
bulk-write without touching Python objects per recommendation.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp


def _as_array(values: Iterable[Hashable] | np.ndarray) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError("ids must be one-dimensional")
    return array


@dataclass(frozen=True, eq=False)
class InteractionLog:
    """One row per interaction event, as read from a file or an event table.

    ``ratings`` and ``timestamps`` are optional; timestamps are seconds since the epoch.
    The log is what splits operate on, before anything is turned into a matrix, so that a
    split can never leak test rows into the matrix the model is trained on.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.user_ids)
        if len(self.item_ids) != n:
            raise ValueError("user_ids and item_ids must have the same length")
        for name in ("ratings", "timestamps"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise ValueError(f"{name} must have one value per interaction")

    def __len__(self) -> int:
        return len(self.user_ids)

    def take(self, rows: np.ndarray) -> InteractionLog:
        """The sub-log of the given row positions or boolean mask."""
        return InteractionLog(
            user_ids=self.user_ids[rows],
            item_ids=self.item_ids[rows],
            ratings=None if self.ratings is None else self.ratings[rows],
            timestamps=None if self.timestamps is None else self.timestamps[rows],
        )

    @property
    def n_users(self) -> int:
        return len(np.unique(self.user_ids)) if len(self) else 0

    @property
    def n_items(self) -> int:
        return len(np.unique(self.item_ids)) if len(self) else 0


@dataclass(frozen=True, eq=False)
class Interactions:
    """The weighted customer × product matrix a model trains on.

    ``matrix`` is CSR (rows are ``user_ids``, columns ``item_ids``) with positive weights.
    ``last_seen_at`` (optional) is aligned with ``matrix.data`` and holds the time of the
    latest interaction of each pair: the repurchase window needs it. ``user_segments``
    (optional) labels each customer so that a fallback can say "popular in your segment".
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    last_seen_at: np.ndarray | None = None
    user_segments: np.ndarray | None = None

    def __post_init__(self) -> None:
        matrix = self.matrix
        if not sp.issparse(matrix) or matrix.format != "csr":
            raise ValueError("Interactions.matrix must be a scipy CSR matrix")
        if matrix.shape != (len(self.user_ids), len(self.item_ids)):
            raise ValueError(
                f"matrix shape {matrix.shape} does not match {len(self.user_ids)} users "
                f"× {len(self.item_ids)} items"
            )
        if self.last_seen_at is not None and len(self.last_seen_at) != matrix.nnz:
            raise ValueError("last_seen_at must be aligned with matrix.data")
        if self.user_segments is not None and len(self.user_segments) != len(self.user_ids):
            raise ValueError("user_segments must have one label per user")

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @cached_property
    def user_index(self) -> dict[Hashable, int]:
        return {user: row for row, user in enumerate(self.user_ids.tolist())}

    @cached_property
    def item_index(self) -> dict[Hashable, int]:
        return {item: col for col, item in enumerate(self.item_ids.tolist())}

    def user_rows(self, user_ids: Iterable[Hashable]) -> np.ndarray:
        """Row of each customer, ``-1`` for a customer the matrix does not know."""
        index = self.user_index
        return np.fromiter((index.get(u, -1) for u in _as_array(user_ids).tolist()), dtype=np.int64)

    def item_columns(self, item_ids: Iterable[Hashable]) -> np.ndarray:
        """Column of each product, ``-1`` for a product the matrix does not know."""
        index = self.item_index
        return np.fromiter((index.get(i, -1) for i in _as_array(item_ids).tolist()), dtype=np.int64)

    @cached_property
    def item_user_counts(self) -> np.ndarray:
        """How many customers interacted with each product (novelty, cold-item checks)."""
        return np.diff(self.matrix.tocsc().indptr)


@dataclass(frozen=True, eq=False)
class ItemCatalog:
    """What the rules and the content model know about each product, by matrix column.

    Every array is aligned with ``item_ids`` (the same order as ``Interactions.item_ids``);
    an absent array means "no rule of that kind applies".
    """

    item_ids: np.ndarray
    names: Sequence[str] | None = None
    descriptions: Sequence[str] | None = None
    categories: Sequence[str] | None = None
    brands: Sequence[str] | None = None
    in_stock: np.ndarray | None = None
    active: np.ndarray | None = None
    promoted: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        for name in ("names", "descriptions", "categories", "brands", "in_stock", "active", "promoted"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise ValueError(f"ItemCatalog.{name} must have one value per item ({n})")

    @property
    def has_text(self) -> bool:
        return any(c is not None for c in (self.names, self.descriptions, self.categories))

    def texts(self, category_weight: int = 2) -> list[str]:
        """One document per product; the category is repeated so that it weighs like a keyword."""
        n = len(self.item_ids)
        parts: list[list[str]] = [[] for _ in range(n)]
        for column, repeat in ((self.names, 1), (self.descriptions, 1), (self.categories, category_weight)):
            if column is None:
                continue
            for i, value in enumerate(column):
                if value:
                    parts[i].extend([str(value).replace("_", " ")] * repeat)
        return [" ".join(p) for p in parts]

    def aligned_to(self, item_ids: np.ndarray) -> ItemCatalog:
        """The catalog reordered to the given item ids; unknown products get neutral values."""
        index = {item: pos for pos, item in enumerate(np.asarray(self.item_ids).tolist())}
        positions = np.fromiter((index.get(i, -1) for i in np.asarray(item_ids).tolist()), dtype=np.int64)
        known = positions >= 0

        def pick(column, default):
            if column is None:
                return None
            values = np.asarray(column, dtype=object if isinstance(default, str) else None)
            out = np.full(len(positions), default, dtype=values.dtype)
            out[known] = values[positions[known]]
            return out

        return ItemCatalog(
            item_ids=np.asarray(item_ids),
            names=pick(self.names, ""),
            descriptions=pick(self.descriptions, ""),
            categories=pick(self.categories, ""),
            brands=pick(self.brands, ""),
            in_stock=pick(self.in_stock, True),
            active=pick(self.active, True),
            promoted=pick(self.promoted, 0.0),
        )


class Reason(enum.IntEnum):
    """Why a product was recommended; stored with each recommendation as a small integer."""

    NONE = 0
    BECAUSE_YOU_BOUGHT = 1
    SIMILAR_CUSTOMERS = 2
    POPULAR = 3
    POPULAR_IN_SEGMENT = 4
    SIMILAR_PRODUCT = 5
    MATCHES_YOUR_TASTE = 6


REASON_TEXT = {
    Reason.NONE: "",
    Reason.BECAUSE_YOU_BOUGHT: "Because you bought {item}",
    Reason.SIMILAR_CUSTOMERS: "Customers with similar purchases bought this",
    Reason.POPULAR: "Popular right now",
    Reason.POPULAR_IN_SEGMENT: "Popular in your segment",
    Reason.SIMILAR_PRODUCT: "Similar to {item}",
    Reason.MATCHES_YOUR_TASTE: "Matches your taste",
}


@dataclass(frozen=True)
class Explanation:
    """A marketer-readable reason, with the customer's products that weighed most."""

    reason: Reason
    items: tuple[Hashable, ...] = ()
    weights: tuple[float, ...] = ()

    @property
    def text(self) -> str:
        template = REASON_TEXT[self.reason]
        if "{item}" in template:
            return (
                template.format(item=self.items[0]) if self.items else REASON_TEXT[Reason.MATCHES_YOUR_TASTE]
            )
        return template

    def describe(self, names: dict[Hashable, str]) -> str:
        """The text with product names instead of ids (the Django side has the names)."""
        if self.items and "{item}" in REASON_TEXT[self.reason]:
            return REASON_TEXT[self.reason].format(item=names.get(self.items[0], self.items[0]))
        return self.text


@dataclass(frozen=True)
class Recommendation:
    item: Hashable
    score: float
    explanation: Explanation


@dataclass(frozen=True, eq=False)
class RecommendationBatch:
    """Top-n lists for a chunk of customers, as arrays ready for a bulk insert.

    ``items`` holds matrix columns (``-1`` where fewer than n products were eligible),
    ``because`` the column of the customer's product that contributed most (``-1`` if none),
    ``reasons`` a ``Reason`` code per recommendation. ``user_rows`` is ``-1`` for customers
    the model was not trained on (they got the cold-start list).
    """

    user_ids: np.ndarray
    user_rows: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    reasons: np.ndarray
    because: np.ndarray
    item_ids: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.user_ids)

    def item_id_matrix(self) -> np.ndarray:
        """External product ids in place of columns (``None`` where there is no product)."""
        out = np.empty(self.items.shape, dtype=object)
        valid = self.items >= 0
        out[valid] = self.item_ids[self.items[valid]]
        return out

    def to_lists(self) -> list[list[Recommendation]]:
        """Per-customer lists of ``Recommendation``: convenient for the API, slow for millions."""
        lists: list[list[Recommendation]] = []
        item_ids = self.item_ids.tolist()  # plain Python ids, not numpy scalars
        for row in range(len(self.user_ids)):
            recs: list[Recommendation] = []
            for col, score, reason, source in zip(
                self.items[row], self.scores[row], self.reasons[row], self.because[row], strict=True
            ):
                if col < 0:
                    break
                explanation = Explanation(
                    reason=Reason(int(reason)),
                    items=(item_ids[source],) if source >= 0 else (),
                )
                recs.append(Recommendation(item=item_ids[col], score=float(score), explanation=explanation))
            lists.append(recs)
        return lists

    def for_user(self, user_id: Hashable) -> list[Recommendation]:
        positions = np.flatnonzero(self.user_ids == user_id)
        if not len(positions):
            raise KeyError(user_id)
        return self.take(positions[:1]).to_lists()[0]

    def take(self, rows: np.ndarray) -> RecommendationBatch:
        return RecommendationBatch(
            user_ids=self.user_ids[rows],
            user_rows=self.user_rows[rows],
            items=self.items[rows],
            scores=self.scores[rows],
            reasons=self.reasons[rows],
            because=self.because[rows],
            item_ids=self.item_ids,
        )

    @staticmethod
    def concatenate(batches: Sequence[RecommendationBatch]) -> RecommendationBatch:
        if not batches:
            raise ValueError("nothing to concatenate")
        return RecommendationBatch(
            user_ids=np.concatenate([b.user_ids for b in batches]),
            user_rows=np.concatenate([b.user_rows for b in batches]),
            items=np.concatenate([b.items for b in batches]),
            scores=np.concatenate([b.scores for b in batches]),
            reasons=np.concatenate([b.reasons for b in batches]),
            because=np.concatenate([b.because for b in batches]),
            item_ids=batches[0].item_ids,
        )


@dataclass(frozen=True, eq=False)
class SimilarItems:
    """Nearest products of each query product (columns, ``-1`` padded) with similarities."""

    query_ids: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    item_ids: np.ndarray = field(repr=False)

    def to_lists(self) -> list[list[tuple[Hashable, float]]]:
        item_ids = self.item_ids.tolist()
        return [
            [(item_ids[c], float(s)) for c, s in zip(cols, vals, strict=True) if c >= 0]
            for cols, vals in zip(self.items, self.scores, strict=True)
        ]
