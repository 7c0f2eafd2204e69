"""Content-based recommendations from product texts (TF-IDF over name, description, category).

Collaborative models cannot score a product nobody has bought yet; this one can, which is
why the hybrid uses it for cold products and customers with very few purchases, and why
"similar products" falls back to it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.engine.base import BaseRecommender
from recommender.engine.errors import TrainingDataError
from recommender.engine.neighbours import SparseLookup, top_k_similarity
from recommender.engine.types import Reason


class ContentRecommender(BaseRecommender):
    """Cosine similarity of TF-IDF vectors, top-k neighbours per product."""

    name = "content"
    item_based = True
    scores_cold_items = True
    attribution_reason = Reason.SIMILAR_PRODUCT

    def __init__(
        self, *, neighbours: int = 50, category_weight: int = 2, ngram_max: int = 1, **common
    ) -> None:
        super().__init__(**common)
        self.neighbours = int(neighbours)
        self.category_weight = int(category_weight)
        self.ngram_max = int(ngram_max)
        self.params = {
            "neighbours": self.neighbours,
            "category_weight": self.category_weight,
            "ngram_max": self.ngram_max,
        }

    def _fit(self, matrix: sp.csr_matrix) -> None:
        catalog = self.catalog_
        if catalog is None or not catalog.has_text:
            raise TrainingDataError(
                "the content model needs product texts: pass an item catalog with names, "
                "descriptions or categories"
            )
        texts = catalog.texts(category_weight=self.category_weight)
        if not any(t.strip() for t in texts):
            raise TrainingDataError("every product text is empty")
        vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, self.ngram_max), dtype=np.float32)
        self.tfidf_ = vectorizer.fit_transform(texts).tocsr()
        self.similarity_ = top_k_similarity(
            self.tfidf_, self.tfidf_.T.tocsr(), k=self.neighbours, normalise=lambda dots, rows: dots
        )
        self.lookup_ = SparseLookup(self.similarity_)

    def _score(self, histories: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        return np.asarray((histories @ self.similarity_).toarray(), dtype=np.float32)

    def _pair_weights(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.lookup_(sources, targets)

    def _item_similarity_rows(self, items: np.ndarray) -> np.ndarray:
        rows = self.similarity_[items].toarray()
        rows[rows == 0] = -np.inf
        return rows

    def item_vectors(self) -> np.ndarray:
        if self._item_vectors is None:
            from sklearn.decomposition import TruncatedSVD

            components = max(1, min(64, self.tfidf_.shape[1] - 1, self.tfidf_.shape[0] - 1))
            if components >= 2:
                svd = TruncatedSVD(n_components=components, random_state=self.seed)
                self._item_vectors = np.asarray(svd.fit_transform(self.tfidf_), dtype=np.float32)
            else:
                self._item_vectors = self.tfidf_.toarray().astype(np.float32)
        return self._item_vectors
