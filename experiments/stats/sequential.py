"""Always-valid intervals and p-values, so that a marketer may look at the results every day.

A fixed-horizon test promises a false-positive rate of alpha at one planned look. Checking it daily
and stopping at the first "significant" day raises that rate several-fold. The remedy used here is
the normal-mixture sequential probability ratio test: Robbins' mixture martingale, as in
Johari, Pekelis and Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations
Research, 2022; the method behind Optimizely's Stats Engine), whose confidence sequence is the
two-sided normal-mixture boundary of Howard, Ramdas, McAuliffe and Sekhon, "Time-uniform,
nonparametric, nonasymptotic confidence sequences" (Annals of Statistics, 2021).

For an estimate with variance V (which shrinks as customers arrive) and a mixing variance tau^2 on
the effect, the likelihood ratio against "no difference" is

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * effect^2 / (2 V (V + tau^2)))

and, by Ville's inequality, P(Lambda ever reaches 1/alpha) <= alpha under no difference. So
p = min(1, 1/Lambda) is valid at every look, and the set of effects not rejected,

    effect +- sqrt(V (V + tau^2) / tau^2 * (log((V + tau^2) / V) + 2 log(1/alpha))),

covers the true effect at every look simultaneously with probability >= 1 - alpha. The interval
excludes zero exactly when p < alpha, as for the fixed-horizon test.

tau^2 only moves where the interval is tightest: choosing it for a planned sample size N makes the
boundary narrowest when each variant has N customers (Howard et al., section 3.5), and validity
holds for any choice fixed before the data. The estimate's variance uses the observed spread
per customer, which makes the guarantee asymptotic (Waudby-Smith et al., "Time-uniform central limit
theory and asymptotic confidence sequences", Annals of Statistics, 2024) - the same footing as the
normal approximation in the fixed-horizon z test.
"""

from __future__ import annotations

import math

import numpy as np

from experiments.stats.frequentist import (
    NO_VARIATION_NOTE,
    OVERFLOW_NOTE,
    ZERO_BASELINE_NOTE,
    effect_components,
)
from experiments.stats.types import Comparison, VariantEstimate

DEFAULT_PLANNED_SAMPLE_SIZE = 5_000


def mixing_variance(planned_variance, alpha):
    """tau^2 that makes the confidence sequence narrowest when the estimate's variance is planned_variance.

    With intrinsic time v = 1/V this is Howard et al.'s optimal rho = v / (2 log(1/alpha) +
    log(1 + 2 log(1/alpha))), since tau^2 = 1/rho.
    """
    log_inverse = -2.0 * np.log(alpha)
    with np.errstate(over="ignore"):
        return np.multiply(planned_variance, log_inverse + np.log1p(log_inverse))


def log_likelihood_ratio(effect, variance, tau2):
    """log Lambda of the normal mixture against no difference (see the module docstring)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        total = np.add(variance, tau2)
        return 0.5 * np.log(np.divide(variance, total)) + np.multiply(tau2, np.square(effect)) / (
            2.0 * np.multiply(variance, total)
        )


def always_valid_p_value(effect, variance, tau2):
    """min(1, 1/Lambda): below alpha at any look with probability at most alpha under no difference."""
    with np.errstate(over="ignore"):
        return np.minimum(1.0, np.exp(-log_likelihood_ratio(effect, variance, tau2)))


def confidence_sequence_half_width(variance, tau2, alpha):
    """Half-width of the (1 - alpha) two-sided normal-mixture confidence sequence."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        total = np.add(variance, tau2)
        return np.sqrt(
            np.multiply(variance, total) / tau2 * (np.log(np.divide(total, variance)) - 2.0 * np.log(alpha))
        )


@np.errstate(all="ignore")  # non-finite results are checked and explained below
def compare_sequentially(
    baseline: VariantEstimate,
    variant: VariantEstimate,
    *,
    alpha: float = 0.05,
    relative: bool = False,
    planned_sample_size: int = DEFAULT_PLANNED_SAMPLE_SIZE,
    tuning_alpha: float | None = None,
) -> Comparison:
    """Always-valid comparison of a variant with the baseline.

    ``tuning_alpha`` fixes tau^2 (defaulting to ``alpha``); a multiple-comparison correction passes
    the family's alpha here and a stricter ``alpha`` for the interval, so that the p-value and every
    interval still come from the same mixture and agree with each other.
    """
    if relative and baseline.mean == 0:
        return Comparison(None, None, None, None, note=ZERO_BASELINE_NOTE)
    effect, term_a, term_b = effect_components(
        baseline.mean, baseline.variance_of_mean, variant.mean, variant.variance_of_mean, relative=relative
    )
    effect = float(effect)
    variance = float(term_a + term_b)
    if not (math.isfinite(effect) and math.isfinite(variance)):
        return Comparison(None, None, None, None, note=OVERFLOW_NOTE)
    if not variance > 0:
        return Comparison(effect, None, None, None, note=NO_VARIATION_NOTE)
    # The variance the estimate will have once each variant has the planned number of customers.
    planned_variance = float(term_a * baseline.n + term_b * variant.n) / planned_sample_size
    tau2 = float(mixing_variance(planned_variance, alpha if tuning_alpha is None else tuning_alpha))
    half_width = float(confidence_sequence_half_width(variance, tau2, alpha))
    p_value = float(always_valid_p_value(effect, variance, tau2))
    if not (tau2 > 0 and math.isfinite(tau2) and math.isfinite(half_width) and math.isfinite(p_value)):
        return Comparison(None, None, None, None, note=OVERFLOW_NOTE)
    return Comparison(
        effect=effect,
        ci_low=effect - half_width,
        ci_high=effect + half_width,
        confidence_level=1.0 - alpha,
        p_value=p_value,
    )
