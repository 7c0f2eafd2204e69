"""Item-based k-nearest-neighbours: "customers who bought this also bought".

The most explainable collaborative model: a recommendation is a sum of the customer's own
products' similarities, so the product that contributed most is the explanation.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.engine.base import BaseRecommender
from recommender.engine.neighbours import SparseLookup, top_k_similarity


class ItemKNNRecommender(BaseRecommender):
    """Cosine item-item similarity with shrinkage, top-k neighbours per product.

    ``sim(i, j) = x_i · x_j / (‖x_i‖ ‖x_j‖ + shrinkage)`` damps similarities that rest on
    few common customers. ``alpha`` < 0.5 makes the cosine asymmetric (towards the
    conditional probability of j given i), which helps with skewed popularity.
    """

    name = "item_knn"
    item_based = True

    def __init__(
        self, *, neighbours: int = 100, shrinkage: float = 10.0, alpha: float = 0.5, **common
    ) -> None:
        super().__init__(**common)
        self.neighbours = int(neighbours)
        self.shrinkage = float(shrinkage)
        self.alpha = float(alpha)
        self.params = {"neighbours": self.neighbours, "shrinkage": self.shrinkage, "alpha": self.alpha}

    def _fit(self, matrix: sp.csr_matrix) -> None:
        item_user = matrix.T.tocsr()
        norms_sq = np.asarray(item_user.multiply(item_user).sum(axis=1)).ravel().astype(np.float32)
        left_norm = np.power(norms_sq, self.alpha)
        right_norm = np.power(norms_sq, 1.0 - self.alpha)

        def normalise(dots: np.ndarray, rows: np.ndarray) -> np.ndarray:
            denominator = left_norm[rows, None] * right_norm[None, :] + self.shrinkage
            return dots / np.maximum(denominator, 1e-12)

        # Row i of S holds the neighbours j of i: a customer's product i pushes j by S[i, j].
        self.similarity_ = top_k_similarity(item_user, matrix, k=self.neighbours, normalise=normalise)
        self.lookup_ = SparseLookup(self.similarity_)

    def _score(self, histories: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        return np.asarray((histories @ self.similarity_).toarray(), dtype=np.float32)

    def _pair_weights(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.lookup_(sources, targets)

    def _item_similarity_rows(self, items: np.ndarray) -> np.ndarray:
        rows = self.similarity_[items].toarray()
        rows[rows == 0] = -np.inf
        return rows
