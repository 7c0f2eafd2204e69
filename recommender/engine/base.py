"""The ``Recommender`` protocol and the chunked scoring machinery every algorithm shares.

An algorithm only says how to fit and how to score a chunk of customer histories (a dense
``(customers, products)`` block); cold-start fallbacks, business rules, top-n selection,
diversity re-ranking and explanations are done here, once, on whole chunks. That keeps
each algorithm small and makes the batch path (``iter_batches``, streamed by the Django
service into the recommendations table) the same code as the real-time path
(``recommend``).
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from recommender.engine.errors import TrainingDataError
from recommender.engine.fallback import PopularityTable
from recommender.engine.ranking import top_n
from recommender.engine.rules import DEFAULT_RULES, RecommendationRules, RuleContext, mmr_rerank
from recommender.engine.types import (
    Explanation,
    Interactions,
    ItemCatalog,
    Reason,
    RecommendationBatch,
    SimilarItems,
)


@runtime_checkable
class Recommender(Protocol):
    """What the services, the CLI and the hybrid need from any algorithm."""

    name: ClassVar[str]
    params: dict[str, Any]

    def fit(self, interactions: Interactions, *, catalog: ItemCatalog | None = None) -> Recommender: ...

    def recommend(
        self,
        user_ids: Sequence[Hashable] | np.ndarray,
        n: int = 10,
        *,
        exclude: Iterable[Hashable] | None = None,
        rules: RecommendationRules | None = None,
    ) -> RecommendationBatch: ...

    def iter_batches(
        self, users: np.ndarray | None = None, *, n: int = 20, rules: RecommendationRules | None = None
    ) -> Iterator[RecommendationBatch]: ...

    def similar_items(self, item_ids: Sequence[Hashable] | np.ndarray, n: int = 10) -> SimilarItems: ...

    def explain(self, user_id: Hashable, item_id: Hashable) -> Explanation: ...


@functools.cache
def blas_controller() -> ThreadpoolController:
    """One scan of the loaded BLAS/OpenMP libraries per process: a scan costs ~8 ms, which a
    real-time request for one customer cannot afford on every call."""
    return ThreadpoolController()


def check_trainable(interactions: Interactions) -> None:
    """Refuse training sets no model can learn from, with a message a marketer understands."""
    matrix = interactions.matrix
    if matrix.nnz == 0:
        raise TrainingDataError("the training set is empty: no customer has any interaction")
    active_users = int((np.diff(matrix.indptr) > 0).sum())
    if active_users < 2:
        raise TrainingDataError(
            "the training set has a single customer: recommendations need at least two "
            "customers to learn what goes together"
        )
    if not np.all(np.isfinite(matrix.data)):
        raise TrainingDataError("the training set contains non-finite interaction weights")


def gather_rows(
    matrix: sp.csr_matrix, rows: np.ndarray, times: np.ndarray | None = None
) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """Rows of a CSR matrix (``-1`` gives an empty row), with the aligned per-entry times."""
    rows = np.asarray(rows, dtype=np.int64)
    known = rows >= 0
    safe = np.where(known, rows, 0)
    starts = matrix.indptr[safe]
    lengths = np.where(known, matrix.indptr[safe + 1] - starts, 0)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    positions = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
    out = sp.csr_matrix(
        (matrix.data[positions], matrix.indices[positions], indptr), shape=(len(rows), matrix.shape[1])
    )
    return out, None if times is None else times[positions]


class BaseRecommender:
    """Shared fitting checks, chunked recommend, rules, fallbacks and explanations.

    Subclasses implement ``_fit(matrix)`` and ``_score(histories, users)``; item-based
    ones also ``_pair_weights(sources, targets)`` (how much a product the customer has
    pushes a recommended one), which gives the "because you bought X" explanations.
    """

    name: ClassVar[str] = "base"
    fallback_reason: ClassVar[Reason] = Reason.MATCHES_YOUR_TASTE
    attribution_reason: ClassVar[Reason] = Reason.BECAUSE_YOU_BOUGHT
    scores_cold_items: ClassVar[bool] = False
    item_based: ClassVar[bool] = False
    dense_pair_weights: ClassVar[bool] = False
    # Whether ``_score`` is cheap and well-defined for known customers with an empty history row
    # (factor models look their vector up), so a chunk's cold rows can be scored and overwritten.
    scores_known_rows_directly: ClassVar[bool] = False
    chunk_size: ClassVar[int] = 256
    # Whether ``_score_columns`` scores only some products (the batch job leaves the products
    # the rules block, out of stock or inactive, out of the computation instead of masking them).
    scores_column_subset: ClassVar[bool] = False

    def __init__(self, *, num_threads: int = 0, seed: int = 42) -> None:
        self.num_threads = num_threads
        self.seed = seed
        self.params: dict[str, Any] = {}
        self._item_vectors: np.ndarray | None = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, interactions: Interactions, *, catalog: ItemCatalog | None = None) -> BaseRecommender:
        check_trainable(interactions)
        self.interactions_ = interactions
        self.catalog_ = catalog.aligned_to(interactions.item_ids) if catalog is not None else None
        self.fallback_ = PopularityTable(interactions)
        self.cold_items_ = np.flatnonzero(interactions.item_user_counts == 0)
        self._item_vectors = None
        with self.thread_limit():
            self._fit(interactions.matrix)
        return self

    def thread_limit(self) -> AbstractContextManager:
        """BLAS thread cap for this model's work (0 leaves the process default)."""
        return blas_controller().limit(limits=self.num_threads) if self.num_threads > 0 else nullcontext()

    def _fit(self, matrix: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _score(self, histories: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        """Dense float32 scores of every product for each history row (a fresh array)."""
        raise NotImplementedError

    def _score_columns(self, histories: sp.csr_matrix, users: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """``_score(histories, users)[:, columns]`` without scoring the other products."""
        raise NotImplementedError

    def _pair_weights(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, histories: sp.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        """Raw model scores for history rows (``users``: training rows or ``-1``); no rules."""
        users = np.full(histories.shape[0], -1) if users is None else np.asarray(users)
        return self._score(sp.csr_matrix(histories, dtype=np.float32), users)

    # -- recommending ----------------------------------------------------------------------

    def recommend(
        self,
        user_ids: Sequence[Hashable] | np.ndarray,
        n: int = 10,
        *,
        exclude: Iterable[Hashable] | None = None,
        rules: RecommendationRules | None = None,
        histories: sp.csr_matrix | Sequence[Iterable[Hashable]] | None = None,
        explain: bool = True,
    ) -> RecommendationBatch:
        """Top-n for the given customers. Unknown customers get the cold-start list.

        ``histories`` replaces the training rows (one per customer: a CSR row over the
        model's products, or a list of product ids), for customers whose new events are
        not in the model yet. ``exclude`` adds product ids never to show.
        """
        interactions = self.interactions_
        user_ids = np.asarray(user_ids)
        users = interactions.user_rows(user_ids)
        if histories is None:
            rows, times = gather_rows(interactions.matrix, users, interactions.last_seen_at)
            score_users = users
        else:
            # Given histories are not the training rows: score them as new customers
            # (factor models fold them in) while still reporting the known rows.
            rows, times = self._histories_matrix(histories, len(user_ids)), None
            score_users = np.full(len(users), -1, dtype=np.int64)
        context = RuleContext(
            rules or DEFAULT_RULES,
            interactions=interactions,
            catalog=self.catalog_,
            extra_excluded=exclude or (),
        )
        batches = []
        with self.thread_limit():
            for start in range(0, len(user_ids), self.chunk_size):
                stop = min(start + self.chunk_size, len(user_ids))
                chunk_times = None if times is None else times[rows.indptr[start] : rows.indptr[stop]]
                batches.append(
                    self._rank_chunk(
                        user_ids[start:stop],
                        users[start:stop],
                        rows[start:stop],
                        chunk_times,
                        n,
                        context,
                        explain,
                        score_users=score_users[start:stop],
                    )
                )
        if not batches:
            return self._empty_batch(n)
        return RecommendationBatch.concatenate(batches)

    def iter_batches(
        self,
        users: np.ndarray | None = None,
        *,
        n: int = 20,
        rules: RecommendationRules | None = None,
        chunk_size: int | None = None,
        explain: bool = True,
    ) -> Iterator[RecommendationBatch]:
        """Stream top-n lists for training rows ``users`` (default: every customer) by chunk.

        Meant for the batch job: each yielded batch can be written to the database before
        the next one is computed, so memory stays at one chunk of scores. The BLAS thread
        cap is held while the generator runs. A row of ``-1`` (as ``Interactions.user_rows``
        gives for a customer the model does not know) gets the cold-start list and is
        reported with the user id ``None``, never with another customer's id; rows outside
        the matrix are a ``ValueError`` (checked before anything is scored).
        """
        interactions = self.interactions_
        rows_all = np.arange(interactions.n_users) if users is None else np.asarray(users, dtype=np.int64)
        if rows_all.ndim != 1:
            raise ValueError("users must be a one-dimensional array of training rows")
        bad = (rows_all < -1) | (rows_all >= interactions.n_users)
        if bad.any():
            raise ValueError(
                f"users holds rows outside the model's {interactions.n_users} customers "
                f"(e.g. {int(rows_all[bad][0])}); pass training rows, or -1 for an unknown customer"
            )
        unknown_any = bool((rows_all < 0).any())
        size = chunk_size or self.chunk_size
        context = RuleContext(rules or DEFAULT_RULES, interactions=interactions, catalog=self.catalog_)
        with self.thread_limit():
            for start in range(0, len(rows_all), size):
                users_chunk = rows_all[start : start + size]
                hist, times = gather_rows(interactions.matrix, users_chunk, interactions.last_seen_at)
                user_ids = interactions.user_ids[np.maximum(users_chunk, 0)]
                if unknown_any:
                    user_ids = user_ids.astype(object)
                    user_ids[users_chunk < 0] = None
                yield self._rank_chunk(
                    user_ids, users_chunk, hist, times, n, context, explain, subset=self.scores_column_subset
                )

    def _histories_matrix(self, histories, m: int) -> sp.csr_matrix:
        n_items = self.interactions_.n_items
        if sp.issparse(histories):
            matrix = sp.csr_matrix(histories, dtype=np.float32)
            if matrix.shape != (m, n_items):
                raise ValueError(f"histories must be {m} × {n_items}")
            return matrix
        histories = list(histories)
        if len(histories) != m:
            raise ValueError("histories must have one entry per customer")
        rows, cols = [], []
        for row, items in enumerate(histories):
            found = self.interactions_.item_columns(list(items))
            found = np.unique(found[found >= 0])
            rows.append(np.full(len(found), row))
            cols.append(found)
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        return sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(m, n_items))

    def _empty_batch(self, n: int) -> RecommendationBatch:
        return RecommendationBatch(
            user_ids=np.zeros(0, dtype=object),
            user_rows=np.zeros(0, dtype=np.int64),
            items=np.zeros((0, n), dtype=np.int32),
            scores=np.zeros((0, n), dtype=np.float32),
            reasons=np.zeros((0, n), dtype=np.int8),
            because=np.zeros((0, n), dtype=np.int32),
            item_ids=self.interactions_.item_ids,
        )

    def _chunk_scores(
        self, histories: sp.csr_matrix, users: np.ndarray, columns: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores of a chunk with the cold-start fallback filled in, and which rows are warm.

        With ``columns`` (a subset of products, ascending) the scores are of those products only.
        """
        if columns is None:
            score = self._score
        else:

            def score(h, u):
                return self._score_columns(h, u, columns)

        lengths = np.diff(histories.indptr)
        warm = lengths > 0
        cold_reasons = np.zeros(len(users), dtype=np.int8)
        if warm.all():
            scores = score(histories, users)
        else:
            cold = np.flatnonzero(~warm)
            fallback, reasons = self.fallback_.scores_for(users[cold])
            if columns is not None:
                fallback = fallback[:, columns]
            cold_reasons[cold] = reasons
            if warm.any() and self.scores_known_rows_directly and (users[cold] >= 0).all():
                # Score every row and overwrite the few cold ones: gathering the warm rows and
                # copying their scores into a fresh block moved the whole (chunk × products)
                # block once more, a tenth of the batch scorer's time.
                scores = score(histories, users)
                scores[cold] = fallback
            elif warm.any():
                hot = np.flatnonzero(warm)
                width = self.interactions_.n_items if columns is None else len(columns)
                scores = np.empty((len(users), width), dtype=np.float32)
                scores[hot] = score(histories[hot], users[hot])
                scores[cold] = fallback
            else:
                scores = fallback
        if not self.scores_cold_items and len(self.cold_items_):
            if columns is None:
                scores[:, self.cold_items_] = -np.inf
            else:
                scores[:, self._cold_positions(columns)] = -np.inf
        return scores, warm, cold_reasons

    def _cold_positions(self, columns: np.ndarray) -> np.ndarray:
        positions = np.searchsorted(columns, self.cold_items_)
        inside = positions < len(columns)
        positions, cold = positions[inside], self.cold_items_[inside]
        return positions[columns[positions] == cold]

    def _rank_chunk(
        self,
        user_ids: np.ndarray,
        users: np.ndarray,
        histories: sp.csr_matrix,
        times: np.ndarray | None,
        n: int,
        context: RuleContext,
        explain: bool,
        score_users: np.ndarray | None = None,
        subset: bool = False,
    ) -> RecommendationBatch:
        # The products the rules block are left out of the computation when the model can score a
        # subset (batch scoring): scores, rules and top-n then work on the allowed columns only.
        columns = context.allowed if subset and len(context.blocked) else None
        scores, warm, cold_reasons = self._chunk_scores(
            histories, users if score_users is None else score_users, columns
        )
        context.apply(scores, histories, times, columns=columns)
        diversity = context.rules.diversity
        pool = n * context.rules.candidate_pool if diversity > 0 else n
        cols, vals = top_n(scores, pool)
        if columns is not None:
            cols = np.where(cols >= 0, columns[np.maximum(cols, 0)], -1).astype(np.int32)
        if diversity > 0:
            cols, vals = mmr_rerank(cols, vals, self.item_vectors(), n, diversity)
        if cols.shape[1] < n:  # a catalog smaller than n
            pad = n - cols.shape[1]
            cols = np.pad(cols, ((0, 0), (0, pad)), constant_values=-1)
            vals = np.pad(vals, ((0, 0), (0, pad)), constant_values=np.nan)
        reasons = np.repeat(self._warm_reasons(users)[:, None], cols.shape[1], axis=1)
        because = np.full(cols.shape, -1, dtype=np.int32)
        if explain and self.item_based and warm.any():
            self._attribute(histories, cols, reasons, because)
        cold = ~warm
        if cold.any():
            reasons[cold] = cold_reasons[cold, None]
            because[cold] = -1
        reasons[cols < 0] = Reason.NONE
        return RecommendationBatch(
            user_ids=user_ids,
            user_rows=users,
            items=cols,
            scores=vals,
            reasons=reasons,
            because=because,
            item_ids=self.interactions_.item_ids,
        )

    # -- explanations ----------------------------------------------------------------------

    def _warm_reasons(self, users: np.ndarray) -> np.ndarray:
        """The reason given to customers with a history when no owned product explains a pick."""
        return np.full(len(users), self.fallback_reason, dtype=np.int8)

    def _attribute(
        self, histories: sp.csr_matrix, cols: np.ndarray, reasons: np.ndarray, because: np.ndarray
    ) -> None:
        """For every (customer, recommended product) the owned product that pushed it most.

        Vectorised over blocks of customers: one entry per (customer, rank, owned product)
        weighted ``x_ui · w(i, j)``, then the best entry of each (customer, rank) group by a
        segmented maximum (groups are contiguous, so no sort is needed). Blocks keep the
        dense weight block of factor models small.
        """
        block = 64
        for start in range(0, cols.shape[0], block):
            stop = min(start + block, cols.shape[0])
            self._attribute_block(
                histories[start:stop], cols[start:stop], reasons[start:stop], because[start:stop]
            )

    def _attribute_block(
        self, histories: sp.csr_matrix, cols: np.ndarray, reasons: np.ndarray, because: np.ndarray
    ) -> None:
        m, n = cols.shape
        lengths = np.diff(histories.indptr)
        sizes = np.repeat(lengths, n)
        total = int(sizes.sum())
        if total == 0:
            return
        group = np.repeat(np.arange(m * n), sizes)
        group_start = np.cumsum(sizes) - sizes
        positions = histories.indptr[group // n] + (np.arange(total) - group_start[group])
        sources = histories.indices[positions]
        targets = cols.reshape(-1)[group]
        valid = targets >= 0
        weights = np.zeros(total, dtype=np.float32)
        if valid.any():
            src, tgt = sources[valid], targets[valid]
            if self.dense_pair_weights:
                # Few distinct products per block: one small dense block, then a gather.
                # (Positions are found on the short history/list arrays, then expanded.)
                unique_src = np.unique(histories.indices)
                unique_tgt = np.unique(cols[cols >= 0])
                src_pos = np.searchsorted(unique_src, histories.indices)[positions[valid]]
                tgt_pos = np.searchsorted(unique_tgt, np.maximum(cols.reshape(-1), 0))[group[valid]]
                pair = self._pair_weight_block(unique_src, unique_tgt)[src_pos, tgt_pos]
            else:
                pair = self._pair_weights(src, tgt)
            weights[valid] = histories.data[positions[valid]] * pair
        nonempty = np.flatnonzero(sizes > 0)
        best_weight = np.maximum.reduceat(weights, group_start[nonempty])
        is_best = weights == np.repeat(best_weight, sizes[nonempty])
        best_positions = np.flatnonzero(is_best)
        best_groups = group[best_positions]
        first = np.r_[True, best_groups[1:] != best_groups[:-1]]
        best_positions, best_groups = best_positions[first], best_groups[first]
        positive = weights[best_positions] > 0
        flat_because = because.reshape(-1)
        flat_reasons = reasons.reshape(-1)
        flat_because[best_groups[positive]] = sources[best_positions[positive]]
        flat_reasons[best_groups[positive]] = self.attribution_reason

    def _pair_weight_block(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Dense ``w(sources × targets)``, for models whose pair weights come from dense factors."""
        s = np.repeat(sources, len(targets))
        t = np.tile(targets, len(sources))
        return self._pair_weights(s, t).reshape(len(sources), len(targets))

    def explain(self, user_id: Hashable, item_id: Hashable, *, top: int = 3) -> Explanation:
        """Why ``item_id`` suits ``user_id``: their products that weigh most, or the fallback."""
        interactions = self.interactions_
        user = int(interactions.user_rows([user_id])[0])
        item = int(interactions.item_columns([item_id])[0])
        if item < 0:
            raise KeyError(f"unknown product {item_id!r}")
        history, _ = gather_rows(interactions.matrix, np.array([user]))
        if history.nnz == 0:
            _, reasons = self.fallback_.scores_for(np.array([user]))
            return Explanation(reason=Reason(int(reasons[0])))
        if not self.item_based:
            return Explanation(reason=self.fallback_reason)
        sources = history.indices
        weights = history.data * self._pair_weights(sources, np.full(len(sources), item))
        order = np.argsort(-weights, kind="stable")[:top]
        order = order[weights[order] > 0]
        if not len(order):
            return Explanation(reason=self.fallback_reason)
        return Explanation(
            reason=self.attribution_reason,
            items=tuple(interactions.item_ids[sources[order]].tolist()),
            weights=tuple(float(w) for w in weights[order]),
        )

    # -- products --------------------------------------------------------------------------

    def item_vectors(self) -> np.ndarray:
        """Dense item embeddings for diversity (MMR, intra-list diversity) and default similarity.

        The default is a truncated SVD of the product columns of the interaction matrix:
        products bought by the same customers point the same way.
        """
        if self._item_vectors is None:
            from sklearn.decomposition import TruncatedSVD

            matrix = self.interactions_.matrix
            components = max(1, min(64, matrix.shape[0] - 1, matrix.shape[1] - 1))
            if components >= 2:
                svd = TruncatedSVD(n_components=components, random_state=self.seed, algorithm="randomized")
                vectors = svd.fit_transform(matrix.T.tocsr().astype(np.float64))
            else:
                vectors = matrix.T.toarray()
            self._item_vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return self._item_vectors

    def _item_similarity_rows(self, items: np.ndarray) -> np.ndarray:
        vectors = self.item_vectors()
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1.0
        unit = vectors / norms[:, None]
        return unit[items] @ unit.T

    def similar_items(self, item_ids: Sequence[Hashable] | np.ndarray, n: int = 10) -> SimilarItems:
        """The n products most like each given product ("similar products" on a product page)."""
        item_ids = np.asarray(item_ids)
        cols = self.interactions_.item_columns(item_ids)
        out_cols = np.full((len(cols), n), -1, dtype=np.int32)
        out_scores = np.full((len(cols), n), np.nan, dtype=np.float32)
        known = np.flatnonzero(cols >= 0)
        if len(known):
            with self.thread_limit():
                sims = np.asarray(self._item_similarity_rows(cols[known]), dtype=np.float32)
            sims[np.arange(len(known)), cols[known]] = -np.inf
            if not self.scores_cold_items and len(self.cold_items_):
                sims[:, self.cold_items_] = -np.inf
            top_cols, top_vals = top_n(sims, n)
            width = top_cols.shape[1]
            out_cols[known, :width] = top_cols
            out_scores[known, :width] = top_vals
        return SimilarItems(
            query_ids=item_ids, items=out_cols, scores=out_scores, item_ids=self.interactions_.item_ids
        )
