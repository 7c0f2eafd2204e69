"""Chance to beat the baseline and expected loss: the two numbers a marketer can act on directly.

"Chance to win" is the posterior probability that the variant's true rate (or mean) is above the
baseline's. "Expected loss" (risk) is what shipping the variant costs on average in the cases where
it is in fact worse: E[max(baseline - variant, 0)], in the metric's own units (or, for a relative
analysis, as a fraction of the baseline). A variant with a high chance to win but a large expected
loss is a gamble; one with a tiny expected loss is safe to ship even if the chance is modest.
(Stucchio, "Bayesian A/B Testing at VWO", 2015.)

Proportions use the Beta-binomial model with a uniform Beta(1, 1) prior by default. Chance to win is
computed by one-dimensional numerical integration, P(Y > X) = integral over u of F_X(F_Y^-1(u)),
taken over the quantiles of the narrower posterior so that the integrand stays smooth even for
millions of customers (Evan Miller's closed form, "Formulas for Bayesian A/B Testing", sums one term
per conversion and is used in the tests as the reference). Expected loss reuses the same integral
through the size-biasing identity E[X 1{X > Y}] = E[X] P(X' > Y) with X' ~ Beta(a + 1, b).
Credible intervals of the difference come from seeded Monte Carlo draws, so a result is reproducible.

Means use the normal approximation to each variant's posterior (flat prior): N(mean, s^2 / n).
Then everything is in closed form: chance = Phi(d / se), loss = se phi(d / se) - d Phi(-d / se).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special, stats

from experiments.stats.frequentist import (
    NO_VARIATION_NOTE,
    OVERFLOW_NOTE,
    ZERO_BASELINE_NOTE,
    effect_components,
)
from experiments.stats.types import Comparison, ConversionCounts, VariantEstimate

DEFAULT_DRAWS = 100_000
DEFAULT_SEED = 0
UNIFORM_PRIOR = (1.0, 1.0)


def beta_posterior(
    counts: ConversionCounts, prior: tuple[float, float] = UNIFORM_PRIOR
) -> tuple[float, float]:
    return (prior[0] + counts.conversions, prior[1] + counts.n - counts.conversions)


def _beta_variance(a: float, b: float) -> float:
    total = a + b
    return a * b / (total * total * (total + 1.0))


def probability_beta_exceeds(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """P(Y > X) for independent X ~ Beta(a_x, b_x) and Y ~ Beta(a_y, b_y)."""
    if _beta_variance(a_x, b_x) <= _beta_variance(a_y, b_y):

        def integrand(u: float) -> float:
            return float(special.betaincc(a_y, b_y, special.betaincinv(a_x, b_x, u)))

    else:

        def integrand(u: float) -> float:
            return float(special.betainc(a_x, b_x, special.betaincinv(a_y, b_y, u)))

    value, _ = integrate.quad(integrand, 0.0, 1.0, epsabs=1e-12, epsrel=1e-10, limit=200)
    return min(1.0, max(0.0, value))


def beta_expected_loss(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """E[max(X - Y, 0)]: what choosing Y over X costs on average when X is in fact better."""
    mean_x = a_x / (a_x + b_x)
    mean_y = a_y / (a_y + b_y)
    x_biased_beats_y = 1.0 - probability_beta_exceeds(a_x + 1.0, b_x, a_y, b_y)
    x_beats_y_biased = 1.0 - probability_beta_exceeds(a_x, b_x, a_y + 1.0, b_y)
    return max(0.0, mean_x * x_biased_beats_y - mean_y * x_beats_y_biased)


def compare_proportions_bayesian(
    baseline: ConversionCounts,
    variant: ConversionCounts,
    *,
    alpha: float = 0.05,
    relative: bool = False,
    prior: tuple[float, float] = UNIFORM_PRIOR,
    seed: int = DEFAULT_SEED,
    draws: int = DEFAULT_DRAWS,
) -> Comparison:
    """Beta-binomial comparison: posterior mean effect, credible interval, chance to win, risk."""
    a_x, b_x = beta_posterior(baseline, prior)
    a_y, b_y = beta_posterior(variant, prior)
    mean_x = a_x / (a_x + b_x)
    mean_y = a_y / (a_y + b_y)
    chance = probability_beta_exceeds(a_x, b_x, a_y, b_y)
    loss = beta_expected_loss(a_x, b_x, a_y, b_y)
    rng = np.random.default_rng(seed)
    sample_x = rng.beta(a_x, b_x, size=draws)
    sample_y = rng.beta(a_y, b_y, size=draws)
    if relative:
        effect = mean_y / mean_x - 1.0
        spread = sample_y / sample_x - 1.0
        loss = loss / mean_x
    else:
        effect = mean_y - mean_x
        spread = sample_y - sample_x
    low, high = np.quantile(spread, [alpha / 2.0, 1.0 - alpha / 2.0])
    return Comparison(
        effect=effect,
        ci_low=float(low),
        ci_high=float(high),
        confidence_level=1.0 - alpha,
        chance_to_win=chance,
        expected_loss=loss,
    )


def compare_means_bayesian(
    baseline: VariantEstimate,
    variant: VariantEstimate,
    *,
    alpha: float = 0.05,
    relative: bool = False,
) -> Comparison:
    """Normal-approximation comparison of two means, everything in closed form."""
    if relative and baseline.mean == 0:
        return Comparison(None, None, None, None, note=ZERO_BASELINE_NOTE)
    difference = variant.mean - baseline.mean
    variance = baseline.variance_of_mean + variant.variance_of_mean
    if not variance > 0:
        return Comparison(difference, None, None, None, note=NO_VARIATION_NOTE)
    standard_error = math.sqrt(variance)
    standardised = difference / standard_error
    chance = float(stats.norm.cdf(standardised))
    loss = float(standard_error * stats.norm.pdf(standardised) - difference * stats.norm.cdf(-standardised))
    loss = max(0.0, loss)
    if relative:
        effect, term_a, term_b = effect_components(
            baseline.mean,
            baseline.variance_of_mean,
            variant.mean,
            variant.variance_of_mean,
            relative=True,
        )
        effect = float(effect)
        spread = math.sqrt(float(term_a + term_b))
        loss = loss / abs(baseline.mean)
        if not (math.isfinite(effect) and math.isfinite(spread) and math.isfinite(loss)):
            return Comparison(None, None, None, None, note=OVERFLOW_NOTE)
    else:
        effect, spread = difference, standard_error
    quantile = float(stats.norm.isf(alpha / 2.0))
    return Comparison(
        effect=effect,
        ci_low=effect - quantile * spread,
        ci_high=effect + quantile * spread,
        confidence_level=1.0 - alpha,
        chance_to_win=chance,
        expected_loss=loss,
    )
