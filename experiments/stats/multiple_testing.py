"""Corrections for comparing several variants with one baseline.

With four variants each tested at 5 %, the chance that at least one "wins" by luck is about 19 %.
Holm's step-down procedure (Holm, "A simple sequentially rejective multiple test procedure",
Scandinavian Journal of Statistics, 1979) keeps that family-wise error at alpha and is never less
powerful than Bonferroni. Benjamini-Hochberg (JRSS B, 1995) controls instead the expected share of
false winners among those declared, which is the better trade when many variants are screened; it
is scipy's ``false_discovery_control``.

Intervals are widened to agree with the corrected decisions, each at a level alpha_i <= alpha, so
every interval is at least as wide as the uncorrected one (and covers at least as often), and it
excludes zero exactly when the corrected p-value is below alpha:

* Holm: the comparison ranked j-th by p-value (1-based, m comparisons) gets alpha / (m - j + 1) if
  Holm rejects it, and alpha / (m - r) otherwise, r being the number Holm rejects. These intervals
  do not claim simultaneous coverage (only Bonferroni's alpha / m for all does, and it would
  contradict Holm's decisions).
* Benjamini-Hochberg: all intervals at R alpha / m, R being the number rejected (at least 1), the
  false-coverage-rate adjusted intervals of Benjamini and Yekutieli (JASA, 2005).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats

Correction = Literal["none", "holm", "bh"]
CORRECTIONS: tuple[str, ...] = ("none", "holm", "bh")


def holm_adjusted(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values: max over the smaller ones of (m - rank + 1) p, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


def benjamini_hochberg_adjusted(p_values: Sequence[float]) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    return stats.false_discovery_control(p, method="bh")


def adjust_p_values(p_values: Sequence[float], correction: Correction) -> np.ndarray:
    if correction == "none":
        return np.asarray(p_values, dtype=float)
    if correction == "holm":
        return holm_adjusted(p_values)
    if correction == "bh":
        return benjamini_hochberg_adjusted(p_values)
    raise ValueError(f"unknown correction {correction!r}; expected one of {', '.join(CORRECTIONS)}")


def interval_alphas(p_values: Sequence[float], alpha: float, correction: Correction) -> np.ndarray:
    """The alpha of each comparison's interval, consistent with the corrected decisions (see module)."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if correction == "none" or m <= 1:
        return np.full(m, alpha)
    adjusted = adjust_p_values(p, correction)
    rejected = int(np.sum(adjusted <= alpha))
    if correction == "bh":
        return np.full(m, min(alpha, alpha * (max(rejected, 1) / m)))
    if correction == "holm":
        order = np.argsort(p, kind="stable")
        levels = np.empty(m)
        for rank, index in enumerate(order):
            step = rank if rank < rejected else rejected
            levels[index] = alpha / (m - step)
        return levels
    raise ValueError(f"unknown correction {correction!r}; expected one of {', '.join(CORRECTIONS)}")
