"""Sample ratio mismatch: did the customers really split the way the experiment was configured?

When a 50/50 test ends with 50.2 % / 49.8 % over a million customers, something removed customers
from one arm unevenly (a redirect that loses some, bot filtering triggered by the treatment, a
tracking bug), and every metric comparison is suspect because the arms are no longer comparable.
Kohavi, Tang and Xu ("Trustworthy Online Controlled Experiments", 2020, ch. 3 and 21) treat this as
the first check before reading any result. The test is Pearson's chi-square goodness of fit of the
observed counts against the configured weights, taken from scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

# A strict threshold: the check runs on every experiment every day, so a loose one would cry wolf,
# and a genuine mismatch (a broken assignment) produces p-values far below it.
DEFAULT_SRM_THRESHOLD = 0.001


@dataclass(frozen=True, slots=True)
class SampleRatioCheck:
    p_value: float
    statistic: float
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    threshold: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.threshold


def check_sample_ratio(
    counts: Sequence[int],
    weights: Sequence[float] | None = None,
    *,
    threshold: float = DEFAULT_SRM_THRESHOLD,
) -> SampleRatioCheck:
    """Chi-square goodness of fit of the per-variant customer counts against the configured weights."""
    observed = np.asarray(counts, dtype=float)
    if observed.ndim != 1 or observed.size < 2:
        raise ValueError("a sample ratio check needs the counts of at least two variants")
    if np.any(observed < 0) or observed.sum() <= 0:
        raise ValueError("counts must be non-negative and not all zero")
    shares = np.ones_like(observed) if weights is None else np.asarray(weights, dtype=float)
    if shares.shape != observed.shape:
        raise ValueError(f"{shares.size} weights given for {observed.size} variants")
    if not np.all(np.isfinite(shares)) or np.any(shares <= 0):
        raise ValueError("weights must be positive finite numbers")
    expected = observed.sum() * shares / shares.sum()
    result = stats.chisquare(observed, f_exp=expected)
    return SampleRatioCheck(
        p_value=float(result.pvalue),
        statistic=float(result.statistic),
        observed=tuple(int(c) for c in counts),
        expected=tuple(float(e) for e in expected),
        threshold=threshold,
    )
