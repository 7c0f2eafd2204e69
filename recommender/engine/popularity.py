"""Most popular products, optionally decayed by age and split by customer segment.

The baseline every other model must beat, and the list a customer without history gets.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.engine.base import BaseRecommender
from recommender.engine.fallback import PopularityTable
from recommender.engine.types import Interactions, Reason
from recommender.engine.weighting import recency_decay


class PopularityRecommender(BaseRecommender):
    """Items ranked by (recency-decayed) interaction weight, per segment when segments exist.

    ``half_life_days`` decays each interaction from the latest one in the data, using the
    interaction times kept with the matrix; without times it has no effect.
    """

    name = "popularity"
    fallback_reason = Reason.POPULAR

    def __init__(self, *, half_life_days: float | None = None, **common) -> None:
        super().__init__(**common)
        self.half_life_days = half_life_days
        self.params = {"half_life_days": half_life_days}

    def _fit(self, matrix: sp.csr_matrix) -> None:
        interactions = self.interactions_
        if self.half_life_days is not None and interactions.last_seen_at is not None:
            times = interactions.last_seen_at
            decayed = matrix.copy()
            decayed.data = decayed.data * recency_decay(
                times, now=float(times.max()), half_life_days=self.half_life_days
            ).astype(np.float32)
            interactions = Interactions(
                matrix=decayed,
                user_ids=interactions.user_ids,
                item_ids=interactions.item_ids,
                user_segments=interactions.user_segments,
            )
        self.table_ = PopularityTable(interactions)
        self.fallback_ = self.table_

    def _score(self, histories: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        scores, _ = self.table_.scores_for(users)
        return scores

    def _warm_reasons(self, users: np.ndarray) -> np.ndarray:
        return self.table_.scores_for(users)[1]
