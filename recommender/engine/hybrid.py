"""Hybrid: a weighted blend of several models, with switches for cold customers and products.

Blending rescales each model's scores per customer (divided by the row's largest absolute
score) so that weights mean the same thing whatever a model's score range. Customers with
no history switch to the popularity list, customers with only a few products to content
similarity when product texts exist, and products nobody bought yet are scored by content
alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.engine.base import BaseRecommender
from recommender.engine.types import Interactions, ItemCatalog


def _normalise_rows(scores: np.ndarray) -> np.ndarray:
    finite = np.where(np.isfinite(scores), np.abs(scores), 0.0)
    scale = finite.max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    return np.where(np.isfinite(scores), scores / scale, 0.0).astype(np.float32)


def _component_specs(components) -> list[tuple[str, dict[str, Any], float]]:
    specs = []
    for component in components:
        if isinstance(component, Mapping):
            specs.append(
                (component["algorithm"], dict(component.get("params", {})), float(component["weight"]))
            )
        else:
            name, params, weight = component
            specs.append((name, dict(params), float(weight)))
    if not specs:
        raise ValueError("a hybrid needs at least one component")
    if any(w < 0 for _, _, w in specs) or sum(w for _, _, w in specs) <= 0:
        raise ValueError("hybrid weights must be non-negative and not all zero")
    return specs


class HybridRecommender(BaseRecommender):
    """Weighted blend of normalised component scores, switching for cold cases."""

    name = "hybrid"

    def __init__(
        self,
        *,
        components: Sequence = (("ease", {}, 0.7), ("item_knn", {}, 0.3)),
        cold_user_max_items: int = 2,
        cold_item_weight: float = 0.5,
        **common,
    ) -> None:
        super().__init__(**common)
        self.components = _component_specs(components)
        self.cold_user_max_items = int(cold_user_max_items)
        self.cold_item_weight = float(cold_item_weight)
        self.params = {
            "components": [{"algorithm": a, "params": p, "weight": w} for a, p, w in self.components],
            "cold_user_max_items": self.cold_user_max_items,
            "cold_item_weight": self.cold_item_weight,
        }
        self._prefitted: list[BaseRecommender] | None = None

    @classmethod
    def from_fitted(
        cls, models: Sequence[BaseRecommender], weights: Sequence[float], **kwargs
    ) -> HybridRecommender:
        """A blend of already fitted models (tuning tries many weights without refitting)."""
        hybrid = cls(
            components=[(m.name, m.params, w) for m, w in zip(models, weights, strict=True)], **kwargs
        )
        hybrid._prefitted = list(models)
        return hybrid

    def fit(self, interactions: Interactions, *, catalog: ItemCatalog | None = None) -> HybridRecommender:
        self._catalog_for_components = catalog
        super().fit(interactions, catalog=catalog)
        return self

    def _fit(self, matrix: sp.csr_matrix) -> None:
        from recommender.engine.registry import make_recommender

        interactions = self.interactions_
        catalog = self._catalog_for_components
        if self._prefitted is not None:
            models = self._prefitted
        else:
            models = [
                make_recommender(name, params, num_threads=self.num_threads, seed=self.seed).fit(
                    interactions, catalog=catalog
                )
                for name, params, _ in self.components
            ]
        self.models_ = models
        self.weights_ = np.array([w for _, _, w in self.components], dtype=np.float32)
        self.content_ = next((m for m in models if m.name == "content"), None)
        if self.content_ is None and catalog is not None and catalog.has_text:
            self.content_ = make_recommender("content", {}, num_threads=self.num_threads, seed=self.seed).fit(
                interactions, catalog=catalog
            )
        self.scores_cold_items = self.content_ is not None and self.cold_item_weight > 0
        # Explanations come from the heaviest item-based component.
        explaining = [(w, m) for m, w in zip(models, self.weights_, strict=True) if m.item_based]
        self.explainer_ = max(explaining, key=lambda pair: pair[0])[1] if explaining else None
        self.item_based = self.explainer_ is not None
        self.dense_pair_weights = self.item_based and self.explainer_.dense_pair_weights
        if self.explainer_ is None:
            self.fallback_reason = models[int(np.argmax(self.weights_))].fallback_reason

    def _score(self, histories: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        total = None
        for model, weight in zip(self.models_, self.weights_, strict=True):
            if weight == 0:
                continue
            part = _normalise_rows(model._score(histories, users))
            if total is None:
                total = weight * part
            else:
                total += weight * part
        if total is None:
            total = np.zeros((histories.shape[0], self.interactions_.n_items), dtype=np.float32)
        if self.content_ is not None:
            content_needed = (
                len(self.cold_items_) and self.scores_cold_items
            ) or self.cold_user_max_items > 0
            if content_needed:
                content = _normalise_rows(self.content_._score(histories, users))
                if len(self.cold_items_) and self.scores_cold_items:
                    total[:, self.cold_items_] = self.cold_item_weight * content[:, self.cold_items_]
                few = np.diff(histories.indptr) <= self.cold_user_max_items
                if few.any():
                    total[few] = content[few]
        return total

    def _pair_weights(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.explainer_._pair_weights(sources, targets)

    def _pair_weight_block(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.explainer_._pair_weight_block(sources, targets)

    def item_vectors(self) -> np.ndarray:
        if self._item_vectors is None:
            self._item_vectors = self.models_[int(np.argmax(self.weights_))].item_vectors()
        return self._item_vectors

    def _item_similarity_rows(self, items: np.ndarray) -> np.ndarray:
        if self.explainer_ is not None:
            return self.explainer_._item_similarity_rows(items)
        return super()._item_similarity_rows(items)
