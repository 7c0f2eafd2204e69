"""Stable hash bucketing: same answer every time, faithful to the weights, independent across salts."""

import hashlib

import numpy as np
import pytest
from scipy import stats

from experiments.assignment import (
    assign_variant,
    assign_variants,
    assignment_point,
    in_global_holdout,
)

CUSTOMERS = [f"cust-{i:06d}" for i in range(100_000)]


def test_the_documented_recipe_is_what_runs():
    """The module docstring promises SHA-256(salt 0x00 id), top 53 bits of the first 8 bytes / 2^53,
    so that a SQL query or script can reproduce assignments; a pinned value catches any change."""
    digest = hashlib.sha256(b"welcome-series-subject\x0042").digest()
    assert assignment_point("welcome-series-subject", 42) == (int.from_bytes(digest[:8], "big") >> 11) / 2**53
    assert assignment_point("welcome-series-subject", 42) == 0.8891283830905563
    assert assignment_point("welcome-series-subject", "42") == assignment_point("welcome-series-subject", 42)


def test_assignment_is_stable():
    first = assign_variants("spring-sale", CUSTOMERS[:2000], [1, 1, 1])
    again = [assign_variant("spring-sale", cid, [1, 1, 1]) for cid in CUSTOMERS[:2000]]
    assert first == again
    assert assign_variant("welcome-series-subject", "cust-00017", [0.2, 0.3, 0.5]) == 2


def test_split_follows_the_weights_on_100k_customers():
    """Chi-square goodness of fit of 100,000 assignments against 50/30/15/5 weights; the hash is
    deterministic, so this p-value is a fixed number that must not signal a mismatch."""
    weights = [50, 30, 15, 5]
    counts = np.bincount(assign_variants("spring-sale", CUSTOMERS, weights), minlength=4)
    expected = np.asarray(weights) / 100 * len(CUSTOMERS)
    assert stats.chisquare(counts, expected).pvalue > 0.01
    assert counts / len(CUSTOMERS) == pytest.approx([0.5, 0.3, 0.15, 0.05], abs=0.005)


def test_two_experiments_split_customers_independently():
    """Chi-square test of independence of the arms of two experiments over the same 100,000
    customers: knowing a customer's arm in one test says nothing about the other."""
    first = assign_variants("subject-test", CUSTOMERS, [1, 1])
    second = assign_variants("send-time-test", CUSTOMERS, [1, 1, 1])
    table = np.zeros((2, 3), dtype=int)
    np.add.at(table, (np.asarray(first), np.asarray(second)), 1)
    assert stats.chi2_contingency(table).pvalue > 0.01
    # Sanity: the same salt is perfectly dependent, which the test would catch.
    same = assign_variants("subject-test", CUSTOMERS[:5000], [1, 1, 1])
    table_same = np.zeros((2, 3), dtype=int)
    np.add.at(table_same, (np.asarray(first[:5000]), np.asarray(same)), 1)
    assert stats.chi2_contingency(table_same).pvalue < 1e-6


def test_global_holdout_takes_its_share_independently_of_experiments():
    held = np.array([in_global_holdout(cid, share=0.05) for cid in CUSTOMERS])
    assert held.mean() == pytest.approx(0.05, abs=0.003)
    arms = np.asarray(assign_variants("subject-test", CUSTOMERS, [1, 1]))
    table = np.array([[np.sum(held & (arms == a)), np.sum(~held & (arms == a))] for a in (0, 1)])
    assert stats.chi2_contingency(table).pvalue > 0.01
    assert not any(in_global_holdout(cid, share=0.0) for cid in CUSTOMERS[:1000])


def test_growing_an_arm_only_moves_customers_into_it():
    """Cumulative shares mean that changing 50/50 to 40/60 moves some of the first arm's customers to
    the second and never the other way, so a ramp-up does not reshuffle everyone."""
    before = np.asarray(assign_variants("ramp", CUSTOMERS[:20_000], [50, 50]))
    after = np.asarray(assign_variants("ramp", CUSTOMERS[:20_000], [40, 60]))
    assert not np.any((before == 1) & (after == 0))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: assign_variant("x", 1, []), "at least one weight"),
        (lambda: assign_variant("x", 1, [1, 0]), "positive"),
        (lambda: assign_variant("x", 1, [1, float("nan")]), "positive"),
        (lambda: assign_variant("x", 1, [True, 1]), "numbers"),
        (lambda: assignment_point("a\x00b", 1), "NUL"),
        (lambda: in_global_holdout(1, share=1.0), "share"),
    ],
)
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
