"""Train/test splits of an interaction log.

Splits work on the log, before any matrix exists, and return two disjoint sets of rows:
the test rows are never seen by anything that trains or tunes. Each split is seeded and
deterministic for a given log and seed.
"""

from __future__ import annotations

import numpy as np

from recommender.engine.errors import TrainingDataError
from recommender.engine.types import InteractionLog

SECONDS_PER_DAY = 86_400.0


def _user_groups(log: InteractionLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row order grouped by user, plus each group's start and size."""
    _, inverse = np.unique(log.user_ids, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    sizes = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return order, starts, sizes


def random_holdout(
    log: InteractionLog, *, test_ratio: float = 0.25, seed: int = 42, min_train: int = 1
) -> tuple[InteractionLog, InteractionLog]:
    """Per-user random holdout: each user keeps ``1 - test_ratio`` of their rows for training.

    ``round(test_ratio × n)`` rows of a user with n rows go to test, but never so many that
    fewer than ``min_train`` stay in training (users with a single row are all-train).
    """
    if not 0.0 < test_ratio < 1.0:
        raise ValueError("test_ratio must be between 0 and 1")
    if not len(log):
        raise TrainingDataError("cannot split an empty interaction log")
    rng = np.random.default_rng(seed)
    order, starts, sizes = _user_groups(log)
    n_test = np.minimum(np.rint(sizes * test_ratio).astype(np.int64), np.maximum(sizes - min_train, 0))
    # A random key per row, ranked within the user: the n_test lowest keys go to test.
    keys = rng.random(len(log))
    group = np.repeat(np.arange(len(sizes)), sizes)
    within = np.lexsort((keys[order], group))
    rank_in_group = np.empty(len(log), dtype=np.int64)
    rank_in_group[within] = np.arange(len(log)) - np.repeat(starts, sizes)
    is_test = np.zeros(len(log), dtype=bool)
    is_test[order] = rank_in_group < np.repeat(n_test, sizes)
    return log.take(~is_test), log.take(is_test)


def _require_timestamps(log: InteractionLog) -> np.ndarray:
    if log.timestamps is None:
        raise ValueError("a temporal split needs a timestamp column")
    return np.asarray(log.timestamps, dtype=float)


def temporal_split(
    log: InteractionLog, *, test_ratio: float | None = 0.25, last_days: float | None = None
) -> tuple[InteractionLog, InteractionLog]:
    """Global time cut: everything after the cut is test.

    With ``last_days`` the cut is that many days before the latest interaction, otherwise it
    is the time quantile that leaves ``test_ratio`` of the rows in test. Rows at the cut time
    itself go to training so that one basket is never split across the two sides.
    """
    if not len(log):
        raise TrainingDataError("cannot split an empty interaction log")
    ts = _require_timestamps(log)
    if last_days is not None:
        cut = ts.max() - last_days * SECONDS_PER_DAY
    else:
        if test_ratio is None or not 0.0 < test_ratio < 1.0:
            raise ValueError("test_ratio must be between 0 and 1")
        cut = np.quantile(ts, 1.0 - test_ratio, method="lower")
    is_test = ts > cut
    return log.take(~is_test), log.take(is_test)


def leave_last_out(log: InteractionLog, *, n: int = 1) -> tuple[InteractionLog, InteractionLog]:
    """Each user's latest ``n`` rows go to test (users with at most ``n`` rows stay in training).

    Ties in time are broken by row order, so the split is deterministic.
    """
    if not len(log):
        raise TrainingDataError("cannot split an empty interaction log")
    ts = _require_timestamps(log)
    order, starts, sizes = _user_groups(log)
    group = np.repeat(np.arange(len(sizes)), sizes)
    within = np.lexsort((order, ts[order], group))
    rank_from_end = np.empty(len(log), dtype=np.int64)
    rank_from_end[within] = np.repeat(starts + sizes, sizes) - 1 - np.arange(len(log))
    is_test = np.zeros(len(log), dtype=bool)
    is_test[order] = (rank_from_end < n) & np.repeat(sizes > n, sizes)
    return log.take(~is_test), log.take(is_test)


def split_log(
    log: InteractionLog, *, method: str, test_ratio: float = 0.25, seed: int = 42
) -> tuple[InteractionLog, InteractionLog]:
    """The CLI's ``--split`` names: ``user-random``, ``temporal`` and ``leave-last-out``."""
    if method == "user-random":
        return random_holdout(log, test_ratio=test_ratio, seed=seed)
    if method == "temporal":
        return temporal_split(log, test_ratio=test_ratio)
    if method == "leave-last-out":
        return leave_last_out(log)
    raise ValueError(f"unknown split {method!r}; use user-random, temporal or leave-last-out")
