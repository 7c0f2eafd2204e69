"""Fixed-horizon comparisons against published textbook and R outputs."""

import math

import numpy as np
import pytest

from experiments.stats.frequentist import (
    NO_VARIATION_NOTE,
    ZERO_BASELINE_NOTE,
    compare_means,
    compare_proportions,
    confidence_interval,
    effect_components,
    two_sided_p_value,
)
from experiments.stats.types import ConversionCounts, MetricSums

# Cushny and Peebles' soporific data as printed by Student (1908), R's `sleep` data set.
SLEEP_GROUP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_GROUP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def sums(values):
    values = np.asarray(values, dtype=float)
    return MetricSums(n=values.size, sum=float(values.sum()), sum_squares=float(np.square(values).sum()))


def test_welch_matches_r_t_test_on_the_sleep_data():
    """R's example `t.test(extra ~ group, data = sleep)` (Welch is R's default) prints
    t = -1.8608, df = 17.776, p-value = 0.07939, 95 percent CI -3.3654832 0.2054832 for group 1 - group 2.
    Our effect is variant - baseline, so with group 2 as the baseline the signs are the same."""
    result = compare_means(sums(SLEEP_GROUP_2), sums(SLEEP_GROUP_1))
    assert result.effect == pytest.approx(0.75 - 2.33, abs=1e-12)
    assert result.p_value == pytest.approx(0.07939, abs=5e-6)
    assert result.ci_low == pytest.approx(-3.3654832, abs=5e-7)
    assert result.ci_high == pytest.approx(0.2054832, abs=5e-7)
    assert result.confidence_level == 0.95


def test_welch_matches_a_second_published_r_output():
    """R `t.test(ts1, ts2)` for ts1 = 11,9,10,11,10,12,9,11,12,9 and ts2 = 11,13,10,13,12,9,11,12,12,11
    (a Welch example reproduced in several statistics Q&A answers): t = -1.8325, df = 17.9,
    p-value = 0.08356, 95 percent CI -2.1469104 0.1469104."""
    ts1 = [11, 9, 10, 11, 10, 12, 9, 11, 12, 9]
    ts2 = [11, 13, 10, 13, 12, 9, 11, 12, 12, 11]
    result = compare_means(sums(ts2), sums(ts1))
    assert result.effect == pytest.approx(-1.0)
    assert result.p_value == pytest.approx(0.08356, abs=5e-6)
    assert (result.ci_low, result.ci_high) == pytest.approx((-2.1469104, 0.1469104), abs=5e-7)


def test_difference_of_proportions_matches_agresti_aspirin_example():
    """Agresti, An Introduction to Categorical Data Analysis (2nd ed., section 2.2), Physicians' Health
    Study: heart attacks 189 / 11,034 on placebo and 104 / 11,037 on aspirin. The difference
    0.0171 - 0.0094 = 0.0077 has estimated standard error 0.0015 and 95 % CI (0.005, 0.011)."""
    aspirin = ConversionCounts(n=11037, conversions=104)
    placebo = ConversionCounts(n=11034, conversions=189)
    result = compare_proportions(aspirin, placebo)
    assert result.effect == pytest.approx(0.0077, abs=5e-5)
    standard_error = (result.ci_high - result.ci_low) / (2 * 1.959963984540054)
    assert standard_error == pytest.approx(0.0015, abs=5e-5)
    assert result.ci_low == pytest.approx(0.005, abs=5e-4)
    assert result.ci_high == pytest.approx(0.011, abs=5e-4)
    # The p-value is the one of the same z statistic, so it agrees with the interval.
    z = result.effect / standard_error
    assert result.p_value == pytest.approx(2 * (1 - 0.5 * math.erfc(-z / math.sqrt(2))), rel=1e-9)


def test_relative_effect_delta_method_matches_the_katz_relative_risk_standard_error():
    """Agresti (section 2.3) reports the relative risk of the same data, 189/11034 over 104/11037,
    as 1.82. Katz et al. (Biometrics, 1978) give the standard error of log RR as
    sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2) = 0.12135 here; the delta-method standard error of the ratio
    itself is RR times that, which is what our relative interval must use."""
    aspirin = ConversionCounts(n=11037, conversions=104)
    placebo = ConversionCounts(n=11034, conversions=189)
    result = compare_proportions(aspirin, placebo, relative=True)
    ratio = 1 + result.effect
    assert ratio == pytest.approx(1.82, abs=5e-3)
    standard_error = (result.ci_high - result.ci_low) / (2 * 1.959963984540054)
    katz = math.sqrt(1 / 189 - 1 / 11034 + 1 / 104 - 1 / 11037)
    assert katz == pytest.approx(0.12135, abs=5e-6)
    assert standard_error == pytest.approx(ratio * katz, rel=1e-12)


def test_interval_and_p_value_agree_on_significance():
    rng = np.random.default_rng(11)
    for _ in range(200):
        n_a, n_b = rng.integers(50, 5000, size=2)
        a = ConversionCounts(int(n_a), int(rng.integers(1, n_a)))
        b = ConversionCounts(int(n_b), int(rng.integers(1, n_b)))
        for relative in (False, True):
            result = compare_proportions(a, b, relative=relative, alpha=0.1)
            excludes_zero = result.ci_low > 0 or result.ci_high < 0
            assert excludes_zero == (result.p_value < 0.1)


def test_relative_interval_covers_the_true_lift_about_as_often_as_promised():
    """Monte Carlo check of the delta method at a realistic e-mail size: 4 % vs 4.4 % click rate,
    5,000 recipients each, 4,000 seeded replications; 95 % +- 1.1 % (three Monte Carlo errors)."""
    rng = np.random.default_rng(2024)
    n, p_a, p_b = 5000, 0.04, 0.044
    rate_a = rng.binomial(n, p_a, size=4000) / n
    rate_b = rng.binomial(n, p_b, size=4000) / n
    effect, term_a, term_b = effect_components(
        rate_a, rate_a * (1 - rate_a) / n, rate_b, rate_b * (1 - rate_b) / n, relative=True
    )
    low, high = confidence_interval(effect, np.sqrt(term_a + term_b), 0.05)
    coverage = np.mean((low <= p_b / p_a - 1) & (p_b / p_a - 1 <= high))
    assert 0.939 <= coverage <= 0.961


def test_vectorised_p_value_matches_the_scalar_comparison():
    a, b = ConversionCounts(1000, 100), ConversionCounts(1000, 130)
    result = compare_proportions(a, b)
    effect, term_a, term_b = effect_components(
        0.1, 0.1 * 0.9 / 1000, 0.13, 0.13 * 0.87 / 1000, relative=False
    )
    assert two_sided_p_value(effect, np.sqrt(term_a + term_b)) == pytest.approx(result.p_value)


def test_no_variation_gives_no_interval_rather_than_false_certainty():
    result = compare_proportions(ConversionCounts(500, 0), ConversionCounts(400, 0))
    assert result.effect == 0
    assert result.p_value is None and result.ci is None
    assert result.note == NO_VARIATION_NOTE


def test_relative_effect_against_a_zero_baseline_is_undefined():
    result = compare_proportions(ConversionCounts(500, 0), ConversionCounts(400, 3), relative=True)
    assert result.effect is None and result.note == ZERO_BASELINE_NOTE


def test_inconsistent_sums_are_refused():
    with pytest.raises(ValueError, match="no set of values can produce"):
        MetricSums(n=10, sum=100.0, sum_squares=500.0)
    with pytest.raises(ValueError, match="must not exceed n"):
        ConversionCounts(n=10, conversions=11)
    with pytest.raises(ValueError, match="whole number"):
        ConversionCounts(n=True, conversions=0)


def test_constant_values_are_accepted_despite_rounding():
    # 3.3 repeated: sum of squares minus sum^2/n is a rounding error around zero, not a contradiction.
    data = MetricSums(n=3, sum=3 * 3.3, sum_squares=3 * 3.3**2)
    assert data.estimate().variance == pytest.approx(0.0, abs=1e-12)
