"""Power and sample size against the documented outputs of R's power.prop.test and power.t.test."""

import pytest

from experiments.stats.power import (
    mde_for_means,
    mde_for_proportions,
    power_for_means,
    power_for_proportions,
    sample_size_for_means,
    sample_size_for_proportions,
)


def test_r_power_prop_test_examples():
    """Examples in R's ?power.prop.test (stats package): power.prop.test(n = 50, p1 = .50, p2 = .75)
    gives power 0.7401659 (documented as "=> power = 0.740"); power.prop.test(p1 = .50, p2 = .75,
    power = .90) gives n = 76.7; power.prop.test(n = 50, p1 = .5, power = .90) gives p2 = 0.8026;
    power.prop.test(p1 = .5, p2 = 0.501, sig.level = .001, power = 0.90) gives n = 10451937."""
    assert power_for_proportions(0.5, 0.75, 50) == pytest.approx(0.7401659, abs=5e-8)
    assert sample_size_for_proportions(0.5, 0.25, power=0.9) == pytest.approx(76.7, abs=0.05)
    assert 0.5 + mde_for_proportions(0.5, 50, power=0.9) == pytest.approx(0.8026, abs=5e-5)
    assert sample_size_for_proportions(0.5, 0.001, alpha=0.001, power=0.9) == pytest.approx(10451937, abs=1)


def test_r_power_t_test_examples():
    """Examples in R's ?power.t.test: power.t.test(n = 20, delta = 1) gives power 0.8689528;
    power.t.test(power = .90, delta = 1) gives n = 22.02110; power.t.test(power = .80, delta = 1)
    gives n = 16.71477 (R's uniroot tolerance leaves the last digit uncertain)."""
    assert power_for_means(1.0, 1.0, 20) == pytest.approx(0.8689528, abs=5e-8)
    assert sample_size_for_means(1.0, 1.0, power=0.9) == pytest.approx(22.02110, abs=2e-5)
    assert sample_size_for_means(1.0, 1.0, power=0.8) == pytest.approx(16.71477, abs=2e-5)


def test_relative_mde_is_a_share_of_the_baseline():
    absolute = sample_size_for_proportions(0.04, 0.004)
    relative = sample_size_for_proportions(0.04, 0.1, relative=True)
    assert relative == pytest.approx(absolute)
    assert sample_size_for_means(0.5, 10.0, baseline_mean=5.0, relative=True) == pytest.approx(
        sample_size_for_means(2.5, 10.0)
    )


@pytest.mark.parametrize("baseline", [0.01, 0.05, 0.3])
@pytest.mark.parametrize("n", [500, 20_000, 3_000_000])
def test_mde_and_sample_size_are_inverse(baseline, n):
    mde = mde_for_proportions(baseline, n)
    assert sample_size_for_proportions(baseline, mde) == pytest.approx(n, rel=1e-6)
    mde_mean = mde_for_means(3.0, n)
    assert sample_size_for_means(mde_mean, 3.0) == pytest.approx(n, rel=1e-6)


def test_smaller_effects_need_more_customers():
    sizes = [sample_size_for_proportions(0.05, mde, relative=True) for mde in (0.2, 0.1, 0.05)]
    assert sizes[0] < sizes[1] < sizes[2]
    # Halving the effect roughly quadruples the audience.
    assert sizes[2] / sizes[1] == pytest.approx(4, rel=0.1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sample_size_for_proportions(0.0, 0.1), "baseline_rate"),
        (lambda: sample_size_for_proportions(0.95, 0.1), "below 1"),
        (lambda: sample_size_for_proportions(0.5, 1e-12), "too small"),
        (lambda: sample_size_for_proportions(0.5, 0.1, power=0.01), "power"),
        (lambda: sample_size_for_means(1.0, 0.0), "standard_deviation"),
        (lambda: sample_size_for_means(0.1, 1.0, relative=True), "baseline_mean"),
        (lambda: mde_for_proportions(0.5, 1), "at least 2"),
    ],
)
def test_impossible_plans_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
