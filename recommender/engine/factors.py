"""Matrix factorisation models trained by ``implicit``: ALS and BPR.

``implicit`` does the training (C++/Cython, multi-threaded, seeded); this module only
adapts it to the engine's chunked scoring, so that batch scoring runs through the same
rules and explanations as every other model. Scores are ``U · Vᵀ`` per chunk.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.engine.base import BaseRecommender, blas_controller, gather_rows
from recommender.engine.types import Explanation


class FactorRecommender(BaseRecommender):
    """Shared scoring of factor models; explanations use cosine similarity of item factors.

    (``x_ui · cos(v_i, v_j)``: the customer's product whose latent vector is closest to the
    recommended one is the best single "because" a factor model can give.)
    """

    item_based = True
    dense_pair_weights = True
    scores_known_rows_directly = True

    def _make_model(self):
        raise NotImplementedError

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.model_ = self._make_model()
        self._subset_factors = None  # (columns, factors of those columns) of the last batch job
        # implicit parallelises itself; a multi-threaded BLAS underneath only oversubscribes.
        with blas_controller().limit(limits=1, user_api="blas"):
            self.model_.fit(sp.csr_matrix(matrix, dtype=np.float32), show_progress=False)
        self.user_factors_ = np.ascontiguousarray(self.model_.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(self.model_.item_factors, dtype=np.float32)
        self.item_factors_t_ = np.ascontiguousarray(self.item_factors_.T)
        norms = np.linalg.norm(self.item_factors_, axis=1, keepdims=True)
        self.unit_item_factors_ = np.divide(
            self.item_factors_, norms, out=np.zeros_like(self.item_factors_), where=norms > 0
        )

    def _fold_in(self, histories: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def _user_vectors(self, histories: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        if (users >= 0).all():
            return self.user_factors_[users]
        vectors = np.empty((len(users), self.user_factors_.shape[1]), dtype=np.float32)
        known = users >= 0
        vectors[known] = self.user_factors_[users[known]]
        new = np.flatnonzero(~known)
        vectors[new] = self._fold_in(histories[new])
        return vectors

    scores_column_subset = True

    def _score(self, histories: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        return self._user_vectors(histories, users) @ self.item_factors_t_

    def _score_columns(self, histories: sp.csr_matrix, users: np.ndarray, columns: np.ndarray) -> np.ndarray:
        # The (factors × allowed products) block is gathered once per set of columns (one batch job).
        cached = getattr(self, "_subset_factors", None)
        if cached is None or not np.array_equal(cached[0], columns):
            cached = (columns.copy(), np.ascontiguousarray(self.item_factors_t_[:, columns]))
            self._subset_factors = cached
        return self._user_vectors(histories, users) @ cached[1]

    def _pair_weights(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", self.unit_item_factors_[sources], self.unit_item_factors_[targets])

    def _attribute_block(
        self, histories: sp.csr_matrix, cols: np.ndarray, reasons: np.ndarray, because: np.ndarray
    ) -> None:
        """The base class's attribution as one batched product: each customer's owned products
        (padded to the block's longest history) against their recommended ones, ``x_ui ·
        cos(v_i, v_j)``, and the first best owned product per recommendation (history order,
        as the segmented maximum picks it). Cheaper than gathering unique products and
        looking each (owned, recommended) pair up in a dense block."""
        m, n = cols.shape
        lengths = np.diff(histories.indptr)
        width = int(lengths.max()) if m else 0
        if width == 0:
            return
        rows = np.repeat(np.arange(m), lengths)
        slots = np.arange(histories.nnz) - np.repeat(histories.indptr[:-1], lengths)
        owned = np.zeros((m, width), dtype=histories.indices.dtype)
        owned[rows, slots] = histories.indices
        weights = np.zeros((m, width), dtype=np.float32)
        weights[rows, slots] = histories.data
        padding = np.ones((m, width), dtype=bool)
        padding[rows, slots] = False
        unit = self.unit_item_factors_
        pair = np.matmul(unit[owned], unit[np.maximum(cols, 0)].transpose(0, 2, 1))  # m × width × n
        pair *= weights[:, :, None]
        pair[padding] = -np.inf
        best = pair.argmax(axis=1)
        best_weight = np.take_along_axis(pair, best[:, None, :], axis=1)[:, 0, :]
        explained = (best_weight > 0) & (cols >= 0)
        because[explained] = np.take_along_axis(owned, best, axis=1)[explained]
        reasons[explained] = self.attribution_reason

    def _pair_weight_block(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.unit_item_factors_[sources] @ self.unit_item_factors_[targets].T

    def item_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _item_similarity_rows(self, items: np.ndarray) -> np.ndarray:
        # The unit factors are kept from fitting: a product page need not renormalise the catalog.
        return self.unit_item_factors_[items] @ self.unit_item_factors_.T


class ALSRecommender(FactorRecommender):
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008): confidence ``1 + alpha · x``."""

    name = "als"

    def __init__(
        self,
        *,
        factors: int = 64,
        regularization: float = 0.1,
        alpha: float = 5.0,
        iterations: int = 15,
        **common,
    ) -> None:
        super().__init__(**common)
        self.factors = int(factors)
        self.regularization = float(regularization)
        self.alpha = float(alpha)
        self.iterations = int(iterations)
        self.params = {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
        }

    def _make_model(self):
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            num_threads=self.num_threads,
            random_state=self.seed,
            calculate_training_loss=False,
        )

    def _fold_in(self, histories: sp.csr_matrix) -> np.ndarray:
        # The exact ALS user step against the trained item factors.
        with blas_controller().limit(limits=1, user_api="blas"):
            rows = np.arange(histories.shape[0])
            return np.asarray(self.model_.recalculate_user(rows, histories), dtype=np.float32).reshape(
                histories.shape[0], -1
            )

    def explain(self, user_id, item_id, *, top: int = 3) -> Explanation:
        """ALS's own decomposition of the score into the customer's products (implicit's explain)."""
        interactions = self.interactions_
        user = int(interactions.user_rows([user_id])[0])
        item = int(interactions.item_columns([item_id])[0])
        if item < 0:
            raise KeyError(f"unknown product {item_id!r}")
        history, _ = gather_rows(interactions.matrix, np.array([user]))
        if user < 0 or history.nnz == 0:
            return super().explain(user_id, item_id, top=top)
        with blas_controller().limit(limits=1, user_api="blas"):
            _, contributions, _ = self.model_.explain(user, history, item, N=top)
        positive = [(col, weight) for col, weight in contributions if weight > 0]
        if not positive:
            return Explanation(reason=self.fallback_reason)
        return Explanation(
            reason=self.attribution_reason,
            items=tuple(interactions.item_ids[col] for col, _ in positive),
            weights=tuple(float(w) for _, w in positive),
        )


class BPRRecommender(FactorRecommender):
    """Bayesian personalised ranking (Rendle et al. 2009) by SGD on sampled triples."""

    name = "bpr"

    def __init__(
        self,
        *,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        **common,
    ) -> None:
        super().__init__(**common)
        self.factors = int(factors)
        self.learning_rate = float(learning_rate)
        self.regularization = float(regularization)
        self.iterations = int(iterations)
        self.params = {
            "factors": self.factors,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "iterations": self.iterations,
        }

    def _make_model(self):
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            num_threads=self.num_threads,
            random_state=self.seed,
        )

    def _fold_in(self, histories: sp.csr_matrix) -> np.ndarray:
        # BPR has no closed-form user step: a new customer is the mean of their products'
        # vectors, with the item-bias column (implicit appends it) kept at 1.
        counts = np.maximum(np.diff(histories.indptr), 1)[:, None]
        binary = sp.csr_matrix(
            (np.ones_like(histories.data), histories.indices, histories.indptr), shape=histories.shape
        )
        vectors = np.asarray(binary @ self.item_factors_, dtype=np.float32) / counts
        vectors[:, -1] = 1.0
        return vectors

    def item_vectors(self) -> np.ndarray:
        return self.item_factors_[:, :-1]
