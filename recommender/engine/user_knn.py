"""User-based k-nearest-neighbours: "customers with baskets like yours bought".

Useful on catalogs with many more products than customers, and as a blend component: it
captures taste clusters that item similarities spread too thin.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.engine.base import BaseRecommender
from recommender.engine.ranking import top_n
from recommender.engine.types import Reason


class UserKNNRecommender(BaseRecommender):
    """Cosine user-user similarity with shrinkage; a product's score is the similarity-weighted
    sum over the k most similar customers who have it."""

    name = "user_knn"
    fallback_reason = Reason.SIMILAR_CUSTOMERS

    def __init__(self, *, neighbours: int = 50, shrinkage: float = 10.0, **common) -> None:
        super().__init__(**common)
        self.neighbours = int(neighbours)
        self.shrinkage = float(shrinkage)
        self.params = {"neighbours": self.neighbours, "shrinkage": self.shrinkage}

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.matrix_ = matrix
        self.norms_ = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel()).astype(np.float32)
        self.transposed_ = matrix.T.tocsr()

    def _score(self, histories: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        dots = np.asarray((histories @ self.transposed_).toarray(), dtype=np.float32)
        own_norms = np.sqrt(np.asarray(histories.multiply(histories).sum(axis=1)).ravel()).astype(np.float32)
        sims = dots / (own_norms[:, None] * self.norms_[None, :] + self.shrinkage)
        sims[dots <= 0] = -np.inf
        known = np.flatnonzero(users >= 0)
        sims[known, users[known]] = -np.inf  # a customer is not their own neighbour
        cols, vals = top_n(sims, self.neighbours)
        keep = cols >= 0
        rows = np.repeat(np.arange(len(users)), keep.sum(axis=1))
        weights = sp.csr_matrix(
            (vals[keep], (rows, cols[keep])), shape=(len(users), self.matrix_.shape[0]), dtype=np.float32
        )
        return np.asarray((weights @ self.matrix_).toarray(), dtype=np.float32)
