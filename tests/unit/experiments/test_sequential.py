"""Always-valid inference: reference values of the normal-mixture boundary and the peeking simulation."""

import numpy as np
import pytest

from experiments.stats.frequentist import effect_components, two_sided_p_value
from experiments.stats.sequential import (
    always_valid_p_value,
    compare_sequentially,
    confidence_sequence_half_width,
    log_likelihood_ratio,
    mixing_variance,
)
from experiments.stats.types import ConversionCounts, VariantEstimate


def test_boundary_matches_howard_et_al_reference_implementation():
    """Reference values from the test suite of `confseq`, the implementation accompanying Howard,
    Ramdas, McAuliffe and Sekhon (Annals of Statistics, 2021), computed there by a reference R
    implementation: for the two-sided normal mixture tuned at intrinsic time 100 with alpha 0.05,
    best rho = 12.60056, log supermartingale at (s = 10, v = 100) = -0.6510052, and boundary at
    v = 100 = 30.35209. Intrinsic time v is 1 / variance and s = effect / variance, so v = 100 and
    s = 10 are an estimate 0.1 with variance 0.01, and the boundary on s is the half-width times v."""
    variance, effect = 0.01, 0.1
    tau2 = mixing_variance(variance, 0.05)
    assert 1 / tau2 == pytest.approx(12.60056, abs=1e-5)
    assert log_likelihood_ratio(effect, variance, tau2) == pytest.approx(-0.6510052, abs=1e-6)
    assert confidence_sequence_half_width(variance, tau2, 0.05) * 100 == pytest.approx(30.35209, abs=1e-5)


def test_p_value_and_interval_agree():
    """Johari et al.'s always-valid p-value is below alpha exactly when the mixture's confidence
    sequence excludes zero, since both are the event Lambda >= 1/alpha."""
    rng = np.random.default_rng(3)
    effect = rng.normal(0, 0.02, size=5000)
    variance = rng.uniform(1e-5, 4e-4, size=5000)
    tau2 = mixing_variance(rng.uniform(1e-5, 1e-4, size=5000), 0.05)
    p = always_valid_p_value(effect, variance, tau2)
    half = confidence_sequence_half_width(variance, tau2, 0.05)
    assert np.array_equal(p < 0.05, np.abs(effect) > half)


def _daily_looks(rng, sims, looks, daily, rate_a, rate_b):
    conversions = np.stack(
        [rng.binomial(daily, rate_a, size=(sims, looks)), rng.binomial(daily, rate_b, size=(sims, looks))]
    ).cumsum(axis=2)
    n = daily * np.arange(1, looks + 1)
    rates = conversions / n
    var_mean = rates * (1 - rates) / n
    effect, term_a, term_b = effect_components(rates[0], var_mean[0], rates[1], var_mean[1], relative=False)
    variance = term_a + term_b
    planned = (term_a * n + term_b * n) / 5000
    return effect, variance, planned


def test_daily_peeking_inflates_the_fixed_test_but_not_the_sequential_one():
    """2,000 seeded A/A tests (5 % conversion in both arms, 200 new customers per arm per day) looked
    at every day for 30 days, stopping at the first "significant" look. The fixed-horizon z test
    keeps its promise at a single planned look (about 5 %) but, peeked at daily, declares a winner
    in roughly a quarter of the tests; the always-valid p-value stays below 5 % over all looks."""
    rng = np.random.default_rng(7)
    alpha = 0.05
    with np.errstate(divide="ignore", invalid="ignore"):
        effect, variance, planned = _daily_looks(rng, 2000, 30, 200, 0.05, 0.05)
        fixed = two_sided_p_value(effect, np.sqrt(variance))
        sequential = always_valid_p_value(effect, variance, mixing_variance(planned, alpha))
    fixed_single_look = np.mean(fixed[:, -1] < alpha)
    fixed_peeking = np.mean(np.any(fixed < alpha, axis=1))
    sequential_peeking = np.mean(np.any(sequential < alpha, axis=1))
    assert 0.035 <= fixed_single_look <= 0.065
    assert fixed_peeking > 3 * alpha
    assert sequential_peeking <= alpha


def test_confidence_sequence_covers_the_true_effect_at_every_look():
    """Under a real effect (5 % vs 5.5 %), the 95 % sequence must contain the true difference at all
    30 looks at once in at least 95 % of the 2,000 seeded runs."""
    rng = np.random.default_rng(8)
    with np.errstate(divide="ignore", invalid="ignore"):
        effect, variance, planned = _daily_looks(rng, 2000, 30, 200, 0.05, 0.055)
        half = confidence_sequence_half_width(variance, mixing_variance(planned, 0.05), 0.05)
    covered = np.all(np.abs(effect - 0.005) <= half, axis=1)
    assert covered.mean() >= 0.95


def test_sequential_interval_is_wider_than_the_fixed_one_but_detects_large_effects():
    baseline, variant = ConversionCounts(5000, 250), ConversionCounts(5000, 340)
    result = compare_sequentially(baseline.estimate(), variant.estimate())
    assert result.ci_low > 0 and result.p_value < 0.05
    half_width = (result.ci_high - result.ci_low) / 2
    fixed_half_width = 1.96 * np.sqrt(0.05 * 0.95 / 5000 + 0.068 * 0.932 / 5000)
    assert half_width > fixed_half_width


def test_tuning_changes_where_the_interval_is_tightest_not_its_validity():
    estimate_a = VariantEstimate(n=1000, mean=0.1, variance=0.09)
    estimate_b = VariantEstimate(n=1000, mean=0.12, variance=0.1056)
    tuned_here = compare_sequentially(estimate_a, estimate_b, planned_sample_size=1000)
    tuned_later = compare_sequentially(estimate_a, estimate_b, planned_sample_size=100_000)
    assert tuned_here.ci_high - tuned_here.ci_low < tuned_later.ci_high - tuned_later.ci_low


def test_degenerate_inputs_explain_themselves():
    zero = ConversionCounts(100, 0).estimate()
    assert compare_sequentially(zero, zero).note is not None
    assert compare_sequentially(zero, ConversionCounts(100, 5).estimate(), relative=True).effect is None
