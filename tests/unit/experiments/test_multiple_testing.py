"""Holm and Benjamini-Hochberg against their published examples, and interval consistency."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.stats.frequentist import confidence_interval, two_sided_p_value
from experiments.stats.multiple_testing import adjust_p_values, interval_alphas

BH_1995 = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719,
           0.6528, 0.7590, 1.000]  # fmt: skip


def test_benjamini_hochberg_paper_example():
    """Benjamini and Hochberg (JRSS B, 1995), section 4: of these 15 p-values the procedure rejects
    the four smallest at q = 0.05, where Bonferroni-type procedures reject only three."""
    adjusted = adjust_p_values(BH_1995, "bh")
    assert list(adjusted <= 0.05) == [True] * 4 + [False] * 11
    assert int(np.sum(adjust_p_values(BH_1995, "holm") <= 0.05)) == 3


def test_holm_wikipedia_example():
    """The Holm-Bonferroni example (Wikipedia, after Holm 1979): p = 0.01, 0.04, 0.03, 0.005 at
    alpha 0.05 rejects H1 and H4 only. Adjusted p-values are 4 x 0.005 = 0.02, 3 x 0.01 = 0.03, then
    2 x 0.03 = 0.06, and max(0.06, 1 x 0.04) = 0.06."""
    adjusted = adjust_p_values([0.01, 0.04, 0.03, 0.005], "holm")
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert list(adjusted <= 0.05) == [True, False, False, True]


def test_no_correction_leaves_p_values_alone():
    assert list(adjust_p_values([0.2, 0.01], "none")) == [0.2, 0.01]
    assert list(interval_alphas([0.2, 0.01], 0.05, "none")) == [0.05, 0.05]


def test_unknown_correction_is_refused():
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_p_values([0.1, 0.2], "bonferroni")


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    z=st.lists(st.floats(min_value=-5, max_value=5, allow_nan=False), min_size=2, max_size=7),
    correction=st.sampled_from(["holm", "bh"]),
)
def test_intervals_exclude_zero_exactly_when_the_corrected_p_value_is_below_alpha(z, correction):
    effects = np.asarray(z)
    p = two_sided_p_value(effects, 1.0)
    adjusted = adjust_p_values(p, correction)
    levels = interval_alphas(p, 0.05, correction)
    assert np.all(levels <= 0.05)
    low, high = confidence_interval(effects, 1.0, levels)
    excludes_zero = (low > 0) | (high < 0)
    decisive = np.abs(adjusted - 0.05) > 1e-9
    assert np.array_equal(excludes_zero[decisive], (adjusted < 0.05)[decisive])
