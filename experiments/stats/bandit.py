"""Thompson sampling for recurring and triggered campaigns: send more of what is working.

A fixed A/B split keeps sending the worse variant to half the audience for the whole test. Thompson
sampling (Thompson, Biometrika 1933; Chapelle and Li, "An Empirical Evaluation of Thompson
Sampling", NIPS 2011) instead sends each variant in proportion to the posterior probability that it
is the best, so traffic drifts to the winner as evidence accumulates while a close race keeps
exploring. Campaigns send in batches, so this computes allocation weights for the next batch rather
than choosing one customer at a time; the weights then go through the ordinary stable-hash
assignment.

A floor keeps every variant at a minimum share: a variant that had a bad first day can still
recover, and the experiment keeps producing data for an unbiased final comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from experiments.stats.bayesian import UNIFORM_PRIOR, beta_posterior
from experiments.stats.types import ConversionCounts

DEFAULT_DRAWS = 20_000


def chance_to_be_best(
    variants: Sequence[ConversionCounts],
    *,
    prior: tuple[float, float] = UNIFORM_PRIOR,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> np.ndarray:
    """Posterior probability that each variant has the highest rate, by seeded Monte Carlo."""
    if len(variants) < 1:
        raise ValueError("at least one variant is needed")
    posteriors = np.array([beta_posterior(v, prior) for v in variants])
    rng = np.random.default_rng(seed)
    samples = rng.beta(posteriors[:, :1], posteriors[:, 1:], size=(len(variants), draws))
    winners = np.argmax(samples, axis=0)
    return np.bincount(winners, minlength=len(variants)) / draws


def thompson_allocation(
    variants: Sequence[ConversionCounts],
    *,
    floor: float = 0.05,
    prior: tuple[float, float] = UNIFORM_PRIOR,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> np.ndarray:
    """Share of the next batch for each variant: chance to be best, lifted to at least ``floor``.

    The shares are floor + (1 - k floor) * chance, which keeps their order, sums to one and gives
    every variant at least ``floor``.
    """
    k = len(variants)
    if not 0 <= floor <= 1 / k:
        raise ValueError(f"floor must be between 0 and 1/{k} for {k} variants, got {floor!r}")
    chances = chance_to_be_best(variants, prior=prior, draws=draws, seed=seed)
    return floor + (1 - k * floor) * chances
