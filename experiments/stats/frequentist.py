"""Fixed-horizon tests: the difference between a variant and the baseline, its interval and p-value.

The p-value and the interval come from the same estimate and the same standard error, so "the
interval excludes zero" and "p < alpha" always agree. For proportions that means the unpooled
(Wald) standard error in both, where a textbook pairs a pooled-variance test with an unpooled
interval; the two differ only in the third digit at campaign sample sizes, and a results page that
calls a variant significant while its interval crosses zero would confuse the marketer reading it.

Relative effects (variant / baseline - 1) use the delta method (Deng, Knoblich and Lu, "Applying the
Delta Method in Metric Analytics", KDD 2018): a first-order Taylor expansion of the ratio of two
independent means. The arithmetic works on numpy arrays so that simulations can evaluate thousands
of experiments at once with exactly the code the product uses.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from experiments.stats.types import Comparison, ConversionCounts, MetricSums, VariantEstimate

NO_VARIATION_NOTE = (
    "The metric did not vary within either variant, so its uncertainty cannot be estimated yet."
)
ZERO_BASELINE_NOTE = "The baseline's mean is zero, so a relative change is not defined."
OVERFLOW_NOTE = (
    "The totals are too extreme to compare reliably (for a relative change, the baseline's mean is "
    "too close to zero)."
)


def effect_components(mean_a, var_mean_a, mean_b, var_mean_b, *, relative: bool):
    """Effect of B over A and the two per-arm terms of its variance.

    The terms are kept apart (rather than summed) because Welch's degrees of freedom weigh each arm
    by its own sample size. Works elementwise on arrays; a baseline mean near zero gives infinities,
    which the callers turn into an explanation.
    """
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return _effect_components(mean_a, var_mean_a, mean_b, var_mean_b, relative=relative)


def _effect_components(mean_a, var_mean_a, mean_b, var_mean_b, *, relative: bool):
    if relative:
        ratio = np.divide(mean_b, mean_a)
        effect = ratio - 1.0
        term_a = np.multiply(var_mean_a, np.square(ratio)) / np.square(mean_a)
        term_b = np.divide(var_mean_b, np.square(mean_a))
        return effect, term_a, term_b
    return np.subtract(mean_b, mean_a), np.asarray(var_mean_a, float), np.asarray(var_mean_b, float)


def welch_degrees_of_freedom(term_a, n_a, term_b, n_b):
    """Welch-Satterthwaite degrees of freedom for a sum of two independent variance terms."""
    total = np.add(term_a, term_b)
    denominator = np.square(term_a) / np.subtract(n_a, 1) + np.square(term_b) / np.subtract(n_b, 1)
    return np.square(total) / denominator


def two_sided_p_value(effect, standard_error, degrees_of_freedom=math.inf):
    """P(|T| >= |effect / se|) under no difference; the normal distribution when df is infinite."""
    statistic = np.abs(np.divide(effect, standard_error))
    if np.all(np.isinf(degrees_of_freedom)):
        return 2.0 * stats.norm.sf(statistic)
    return 2.0 * stats.t.sf(statistic, degrees_of_freedom)


def confidence_interval(effect, standard_error, alpha, degrees_of_freedom=math.inf):
    """Two-sided (1 - alpha) interval effect +- quantile * se."""
    if np.all(np.isinf(degrees_of_freedom)):
        quantile = stats.norm.isf(np.divide(alpha, 2.0))
    else:
        quantile = stats.t.isf(np.divide(alpha, 2.0), degrees_of_freedom)
    half_width = quantile * standard_error
    return np.subtract(effect, half_width), np.add(effect, half_width)


# Extreme totals overflow somewhere in the arithmetic; every result is checked for finiteness and
# explained instead, so numpy's warnings would only be noise on the command line's stderr.
@np.errstate(all="ignore")
def _compare(
    baseline: VariantEstimate,
    variant: VariantEstimate,
    *,
    alpha: float,
    relative: bool,
    use_t: bool,
) -> Comparison:
    if relative and baseline.mean == 0:
        return Comparison(None, None, None, None, note=ZERO_BASELINE_NOTE)
    effect, term_a, term_b = effect_components(
        baseline.mean, baseline.variance_of_mean, variant.mean, variant.variance_of_mean, relative=relative
    )
    variance = float(term_a + term_b)
    effect = float(effect)
    if not (math.isfinite(effect) and math.isfinite(variance)):
        return Comparison(None, None, None, None, note=OVERFLOW_NOTE)
    if not variance > 0:
        return Comparison(effect, None, None, None, note=NO_VARIATION_NOTE)
    standard_error = math.sqrt(variance)
    df = math.inf
    if use_t:
        df = float(welch_degrees_of_freedom(term_a, baseline.n, term_b, variant.n))
        if math.isnan(df):
            return Comparison(None, None, None, None, note=OVERFLOW_NOTE)
    if not relative and use_t:
        # scipy's Welch test from summary statistics gives the same number; using it keeps the
        # absolute p-value tied to a reference implementation.
        p_value = float(
            stats.ttest_ind_from_stats(
                variant.mean,
                math.sqrt(variant.variance),
                variant.n,
                baseline.mean,
                math.sqrt(baseline.variance),
                baseline.n,
                equal_var=False,
            ).pvalue
        )
    else:
        p_value = float(two_sided_p_value(effect, standard_error, df))
    low, high = (float(bound) for bound in confidence_interval(effect, standard_error, alpha, df))
    if not (math.isfinite(p_value) and math.isfinite(low) and math.isfinite(high)):
        return Comparison(None, None, None, None, note=OVERFLOW_NOTE)
    return Comparison(
        effect=effect,
        ci_low=low,
        ci_high=high,
        confidence_level=1.0 - alpha,
        p_value=min(1.0, p_value),
    )


def compare_proportions(
    baseline: ConversionCounts,
    variant: ConversionCounts,
    *,
    alpha: float = 0.05,
    relative: bool = False,
) -> Comparison:
    """Two-proportion z comparison (unpooled standard error), absolute or relative."""
    return _compare(baseline.estimate(), variant.estimate(), alpha=alpha, relative=relative, use_t=False)


def compare_means(
    baseline: MetricSums | VariantEstimate,
    variant: MetricSums | VariantEstimate,
    *,
    alpha: float = 0.05,
    relative: bool = False,
) -> Comparison:
    """Welch's unequal-variance t comparison from summary statistics, absolute or relative."""
    base = baseline.estimate() if isinstance(baseline, MetricSums) else baseline
    other = variant.estimate() if isinstance(variant, MetricSums) else variant
    return _compare(base, other, alpha=alpha, relative=relative, use_t=True)


def compare_estimates(
    baseline: VariantEstimate,
    variant: VariantEstimate,
    *,
    alpha: float = 0.05,
    relative: bool = False,
    use_t: bool = True,
) -> Comparison:
    """Comparison of already-reduced estimates (e.g. CUPED-adjusted), t or normal reference."""
    return _compare(baseline, variant, alpha=alpha, relative=relative, use_t=use_t)
