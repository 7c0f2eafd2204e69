"""Chance to beat the baseline and expected loss: the two numbers a marketer can act on directly.

"Chance to win" is the posterior probability that the variant's true rate (or mean) is above the
baseline's. "Expected loss" (risk) is what shipping the variant costs on average in the cases where
it is in fact worse: E[max(baseline - variant, 0)], in the metric's own units (or, for a relative
analysis, as a fraction of the baseline). A variant with a high chance to win but a large expected
loss is a gamble; one with a tiny expected loss is safe to ship even if the chance is modest.
(Stucchio, "Bayesian A/B Testing at VWO", 2015.)

Proportions use the Beta-binomial model with a uniform Beta(1, 1) prior by default. Chance to win is
exact: Evan Miller's closed form ("Formulas for Bayesian A/B Testing", 2015), a sum with one term
per conversion of the variant, or per non-conversion of the baseline after mirroring rates to
1 - rate, whichever is shorter. For non-integer priors or more than 50,000 terms it becomes the
integral P(Y > X) = integral over u of F_X(F_Y^-1(u)), taken over the quantiles of the narrower
posterior; at those sizes either way is accurate to about 1e-9. Expected loss reuses the same
probability through the size-biasing identity E[X 1{X > Y}] = E[X] P(X' > Y), X' ~ Beta(a + 1, b).
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


# Above this many terms the exact sum costs more than the integral. Both are then limited to about
# 1e-9 by the special functions at such large arguments, which no decision can notice; below it the
# sum is exact even for probabilities of 1e-20, where the integral would round them to 0.
_MAX_EXACT_TERMS = 50_000


def _exact_probability(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """Evan Miller's sum, over a_y terms, or over b_x terms after the mirror p -> 1 - p.

    Mirroring (P(Y > X) = P(1 - X > 1 - Y)) lets the shorter sum be used without computing a
    complement, which would lose every digit of a probability close to 0.
    """
    if a_y <= b_x:
        i = np.arange(int(a_y))
        terms = (
            special.betaln(a_x + i, b_x + b_y)
            - np.log(b_y + i)
            - special.betaln(1 + i, b_y)
            - special.betaln(a_x, b_x)
        )
    else:
        i = np.arange(int(b_x))
        terms = (
            special.betaln(b_y + i, a_y + a_x)
            - np.log(a_x + i)
            - special.betaln(1 + i, a_x)
            - special.betaln(b_y, a_y)
        )
    return float(np.exp(special.logsumexp(terms)))


def _integrated_probability(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """The same probability as an integral over the quantiles of the narrower posterior."""
    if _beta_variance(a_x, b_x) <= _beta_variance(a_y, b_y):

        def integrand(u: float) -> float:
            return float(special.betaincc(a_y, b_y, special.betaincinv(a_x, b_x, u)))

    else:

        def integrand(u: float) -> float:
            return float(special.betainc(a_x, b_x, special.betaincinv(a_y, b_y, u)))

    # full_output makes quad report (rather than print a warning) when it cannot reach the
    # tolerance, which happens only for probabilities within about 1e-9 of 0 or 1.
    value = integrate.quad(integrand, 0.0, 1.0, epsabs=1e-12, epsrel=1e-10, limit=200, full_output=1)[0]
    return value


def probability_beta_exceeds(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """P(Y > X) for independent X ~ Beta(a_x, b_x) and Y ~ Beta(a_y, b_y)."""
    whole = all(float(v).is_integer() for v in (a_x, b_x, a_y, b_y))
    if whole and min(a_y, b_x) <= _MAX_EXACT_TERMS:
        value = _exact_probability(a_x, b_x, a_y, b_y)
    else:
        value = _integrated_probability(a_x, b_x, a_y, b_y)
    return min(1.0, max(0.0, value))


def beta_expected_loss(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """E[max(X - Y, 0)]: what choosing Y over X costs on average when X is in fact better."""
    mean_x = a_x / (a_x + b_x)
    mean_y = a_y / (a_y + b_y)
    x_biased_beats_y = 1.0 - probability_beta_exceeds(a_x + 1.0, b_x, a_y, b_y)
    x_beats_y_biased = 1.0 - probability_beta_exceeds(a_x, b_x, a_y + 1.0, b_y)
    return max(0.0, mean_x * x_biased_beats_y - mean_y * x_beats_y_biased)


@np.errstate(all="ignore")  # a ratio of draws near zero may overflow; checked below
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
    low, high = (float(q) for q in np.quantile(spread, [alpha / 2.0, 1.0 - alpha / 2.0]))
    if not (math.isfinite(low) and math.isfinite(high) and math.isfinite(effect)):
        # A baseline posterior crowded against zero makes the relative change unbounded.
        return Comparison(
            effect, None, None, None, chance_to_win=chance, expected_loss=loss, note=OVERFLOW_NOTE
        )
    return Comparison(
        effect=effect,
        ci_low=low,
        ci_high=high,
        confidence_level=1.0 - alpha,
        chance_to_win=chance,
        expected_loss=loss,
    )


@np.errstate(all="ignore")  # non-finite results are checked and explained below
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
    density = float(stats.norm.pdf(standardised))  # 0 when the difference is many errors wide
    loss = max(0.0, float(standard_error * density - difference * stats.norm.cdf(-standardised)))
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
