"""Thompson-sampling allocation: reproducible, floored, and steering traffic to the best variant."""

import numpy as np
import pytest

from experiments.stats.bandit import chance_to_be_best, thompson_allocation
from experiments.stats.bayesian import probability_beta_exceeds
from experiments.stats.types import ConversionCounts


def test_allocation_is_reproducible_given_the_seed():
    arms = [ConversionCounts(500, 20), ConversionCounts(500, 26), ConversionCounts(500, 23)]
    assert np.array_equal(thompson_allocation(arms, seed=9), thompson_allocation(arms, seed=9))
    assert not np.array_equal(thompson_allocation(arms, seed=9), thompson_allocation(arms, seed=10))


def test_two_arm_chance_to_be_best_matches_the_integrated_chance_to_win():
    arms = [ConversionCounts(800, 40), ConversionCounts(800, 52)]
    shares = chance_to_be_best(arms, draws=200_000, seed=1)
    exact = probability_beta_exceeds(41, 761, 53, 749)
    monte_carlo_error = np.sqrt(exact * (1 - exact) / 200_000)
    assert shares[1] == pytest.approx(exact, abs=4 * monte_carlo_error)


def test_floor_keeps_every_variant_in_play():
    arms = [ConversionCounts(5000, 50), ConversionCounts(5000, 400), ConversionCounts(5000, 60)]
    weights = thompson_allocation(arms, floor=0.1)
    assert weights.sum() == pytest.approx(1.0)
    assert np.all(weights >= 0.1 - 1e-12)
    assert weights[1] == pytest.approx(0.8, abs=1e-3)


def test_without_data_every_variant_gets_about_the_same_share():
    weights = thompson_allocation([ConversionCounts(1, 0)] * 4, floor=0.0, seed=3)
    assert weights == pytest.approx([0.25] * 4, abs=0.02)


def test_batches_drift_towards_the_best_variant():
    """30 seeded batches of 1,000 sends with true rates 4 %, 5 % and 6 %: Thompson sampling gives the
    6 % variant most of the later traffic and earns more conversions than a fixed even split."""
    rng = np.random.default_rng(12)
    true_rates = np.array([0.04, 0.05, 0.06])
    sent = np.zeros(3, dtype=int)
    converted = np.zeros(3, dtype=int)
    for batch in range(30):
        arms = [ConversionCounts(int(max(s, 1)), int(c)) for s, c in zip(sent, converted, strict=True)]
        weights = thompson_allocation(arms, floor=0.05, seed=batch)
        batch_sends = rng.multinomial(1000, weights)
        sent += batch_sends
        converted += rng.binomial(batch_sends, true_rates)
    last_weights = thompson_allocation(
        [ConversionCounts(int(s), int(c)) for s, c in zip(sent, converted, strict=True)], floor=0.05
    )
    assert np.argmax(last_weights) == 2
    assert last_weights[2] > 0.6
    even_split_expectation = 30_000 * true_rates.mean()
    assert converted.sum() > even_split_expectation


def test_a_floor_too_large_for_the_number_of_variants_is_refused():
    with pytest.raises(ValueError, match="floor"):
        thompson_allocation([ConversionCounts(10, 1)] * 4, floor=0.3)
