"""The cold-start list: what a customer with no history gets from every model.

Kept apart from ``popularity.py`` because every recommender carries one (an unknown
customer must get a list, never an error), while the popularity *model* is one algorithm
among others.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import scipy.sparse as sp

from recommender.engine.types import Interactions, Reason


class PopularityTable:
    """Item popularity overall and within each customer segment.

    Popularity is the sum of interaction weights per product, so recency decay and event
    kinds applied when the interactions were built carry over. A segment needs at least
    ``min_segment_users`` customers before its own list is trusted.
    """

    def __init__(self, interactions: Interactions, *, min_segment_users: int = 20) -> None:
        matrix = interactions.matrix
        self.overall = np.asarray(matrix.sum(axis=0)).ravel().astype(np.float32)
        self.segment_scores: dict[Hashable, np.ndarray] = {}
        self.user_segments = interactions.user_segments
        if interactions.user_segments is not None:
            labels = np.asarray(interactions.user_segments, dtype=object)
            for label in {x for x in labels.tolist() if x is not None}:
                members = np.flatnonzero(labels == label)
                if len(members) >= min_segment_users:
                    indicator = sp.csr_matrix(
                        (np.ones(len(members), dtype=np.float32), (np.zeros(len(members)), members)),
                        shape=(1, matrix.shape[0]),
                    )
                    self.segment_scores[label] = np.asarray((indicator @ matrix).todense()).ravel()

    def scores_for(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Popularity rows for training rows ``users`` (``-1`` = unknown) and the reason of each."""
        m = len(users)
        scores = np.broadcast_to(self.overall, (m, len(self.overall))).copy()
        reasons = np.full(m, Reason.POPULAR, dtype=np.int8)
        if self.segment_scores and self.user_segments is not None:
            known = users >= 0
            labels = np.full(m, None, dtype=object)
            labels[known] = np.asarray(self.user_segments, dtype=object)[users[known]]
            for label, vector in self.segment_scores.items():
                members = labels == label
                if members.any():
                    scores[members] = vector
                    reasons[members] = Reason.POPULAR_IN_SEGMENT
        return scores, reasons
