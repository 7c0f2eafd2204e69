"""Chance to win and expected loss against closed forms from the literature and exact integrals."""

import numpy as np
import pytest
from scipy import special

from experiments.stats.bayesian import (
    beta_expected_loss,
    compare_means_bayesian,
    compare_proportions_bayesian,
    probability_beta_exceeds,
)
from experiments.stats.types import ConversionCounts, VariantEstimate


def miller_probability_b_beats_a(a_a, b_a, a_b, b_b):
    """Evan Miller, "Formulas for Bayesian A/B Testing" (2015): for integer a_b,
    P(p_B > p_A) = sum_{i=0}^{a_b - 1} B(a_a + i, b_a + b_b) / ((b_b + i) B(1 + i, b_b) B(a_a, b_a)),
    evaluated in log space."""
    i = np.arange(int(a_b))
    terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.exp(special.logsumexp(terms)))


def stucchio_expected_loss(a_a, b_a, a_b, b_b):
    """Chris Stucchio, "Bayesian A/B Testing at VWO" (2015), the closed-form loss of choosing B:
    E[max(p_A - p_B, 0)] = B(a_a + 1, b_a)/B(a_a, b_a) h(a_a + 1, b_a, a_b, b_b)
                         - B(a_b + 1, b_b)/B(a_b, b_b) h(a_a, b_a, a_b + 1, b_b),
    with h(a, b, c, d) = P(X_{a,b} > X_{c,d}), built here from Miller's sum."""

    def h(a, b, c, d):
        return 1 - miller_probability_b_beats_a(a, b, c, d)

    mean_a_term = np.exp(special.betaln(a_a + 1, b_a) - special.betaln(a_a, b_a))
    mean_b_term = np.exp(special.betaln(a_b + 1, b_b) - special.betaln(a_b, b_b))
    return mean_a_term * h(a_a + 1, b_a, a_b, b_b) - mean_b_term * h(a_a, b_a, a_b + 1, b_b)


POSTERIORS = [
    (1, 1, 1, 1),
    (1, 1, 2, 1),
    (3, 1, 1, 3),
    (121, 881, 146, 856),
    (10, 100, 30, 80),
    (1001, 99001, 1101, 98901),
    (5, 3, 200, 2000),
    (41, 960, 2, 1000),
    (39, 12, 1, 21),  # P about 2e-10: only an exact sum gets this right
    (41, 5, 300, 60),  # more variant conversions than baseline non-conversions: the mirrored sum
    (300, 60, 41, 5),
]


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_chance_to_win_matches_evan_millers_closed_form(posterior):
    assert probability_beta_exceeds(*posterior) == pytest.approx(
        miller_probability_b_beats_a(*posterior), abs=1e-9
    )


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_expected_loss_matches_stucchios_closed_form(posterior):
    assert beta_expected_loss(*posterior) == pytest.approx(stucchio_expected_loss(*posterior), abs=1e-9)


def test_exact_values_for_uniform_posteriors():
    """Two independent uniforms: P(U2 > U1) = 1/2 and E[max(U1 - U2, 0)] = E|U1 - U2| / 2 = 1/6;
    against Beta(2, 1) (density 2x): P = integral of 2x * x = 2/3."""
    assert probability_beta_exceeds(1, 1, 1, 1) == pytest.approx(0.5, abs=1e-12)
    assert beta_expected_loss(1, 1, 1, 1) == pytest.approx(1 / 6, abs=1e-12)
    assert probability_beta_exceeds(1, 1, 2, 1) == pytest.approx(2 / 3, abs=1e-12)


@pytest.mark.parametrize("scale", [1, 10])
def test_large_campaigns_agree_with_the_normal_approximation(scale):
    """With two (or twenty) million recipients per arm the Beta posteriors are normal to many
    digits; the larger one has more than 50,000 conversions and so goes through the integral."""
    n, base_conversions, variant_conversions = 2_000_000 * scale, 40_000 * scale, 40_300 * scale
    if scale > 1:
        variant_conversions = 40_000 * scale + 950  # keep the race close at the larger size
    base, variant = ConversionCounts(n, base_conversions), ConversionCounts(n, variant_conversions)
    beta_result = compare_proportions_bayesian(base, variant)
    normal_result = compare_means_bayesian(base.estimate(), variant.estimate())
    assert 0.05 < normal_result.chance_to_win < 0.95
    assert beta_result.chance_to_win == pytest.approx(normal_result.chance_to_win, abs=2e-3)
    assert beta_result.expected_loss == pytest.approx(normal_result.expected_loss, rel=0.02)


def test_non_integer_priors_use_the_integral_and_stay_between_the_exact_neighbours():
    """P(Y > X) falls as X's first parameter grows, so a half-integer value (computed by the
    integral) must lie between the exact sums at the integers either side, and match a seeded
    Monte Carlo estimate."""
    below = probability_beta_exceeds(121, 881, 146, 856)
    between = probability_beta_exceeds(121.5, 881, 146, 856)
    above = probability_beta_exceeds(122, 881, 146, 856)
    assert below > between > above
    rng = np.random.default_rng(17)
    draws = rng.beta(146, 856, size=1_000_000) > rng.beta(121.5, 881, size=1_000_000)
    assert between == pytest.approx(draws.mean(), abs=4 * np.sqrt(between * (1 - between) / 1_000_000))


def test_normal_closed_forms_match_monte_carlo():
    rng = np.random.default_rng(5)
    base = VariantEstimate(n=400, mean=10.0, variance=36.0)
    variant = VariantEstimate(n=500, mean=10.6, variance=49.0)
    result = compare_means_bayesian(base, variant)
    draws_a = rng.normal(10.0, np.sqrt(36 / 400), size=400_000)
    draws_b = rng.normal(10.6, np.sqrt(49 / 500), size=400_000)
    assert result.chance_to_win == pytest.approx(np.mean(draws_b > draws_a), abs=3e-3)
    assert result.expected_loss == pytest.approx(np.mean(np.maximum(draws_a - draws_b, 0)), rel=0.03)


def test_results_are_reproducible_given_the_seed_and_move_with_it():
    base, variant = ConversionCounts(1000, 100), ConversionCounts(1000, 120)
    first = compare_proportions_bayesian(base, variant, seed=42)
    again = compare_proportions_bayesian(base, variant, seed=42)
    other = compare_proportions_bayesian(base, variant, seed=43)
    assert first == again
    assert first.ci != other.ci
    assert first.chance_to_win == other.chance_to_win  # integrated, not sampled


def test_relative_interval_and_loss_are_on_the_relative_scale():
    base, variant = ConversionCounts(1000, 100), ConversionCounts(1000, 120)
    absolute = compare_proportions_bayesian(base, variant)
    relative = compare_proportions_bayesian(base, variant, relative=True)
    baseline_mean = 101 / 1002
    assert relative.expected_loss == pytest.approx(absolute.expected_loss / baseline_mean)
    assert relative.ci_low < relative.effect < relative.ci_high
    assert relative.effect == pytest.approx((121 / 1002) / baseline_mean - 1)


def test_degenerate_means_explain_themselves():
    flat = VariantEstimate(n=10, mean=0.0, variance=0.0)
    assert compare_means_bayesian(flat, flat).note is not None
    assert compare_means_bayesian(flat, VariantEstimate(10, 1.0, 1.0), relative=True).effect is None
