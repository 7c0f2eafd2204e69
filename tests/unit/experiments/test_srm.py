"""Sample ratio mismatch against published chi-square examples."""

import pytest

from experiments.stats.srm import check_sample_ratio
from experiments.stats.verdict import sample_ratio_warning


def test_kohavi_tang_xu_example():
    """Kohavi, Tang and Xu, Trustworthy Online Controlled Experiments (2020), chapter 3: a 50/50
    test with 821,588 users in control and 815,482 in treatment (ratio 0.993) has an SRM p-value of
    1.8E-6."""
    check = check_sample_ratio([821_588, 815_482], [0.5, 0.5])
    assert check.p_value == pytest.approx(1.8e-6, abs=5e-8)
    assert check.mismatch


def test_mendel_peas_goodness_of_fit():
    """Mendel's dihybrid cross (1866), the textbook chi-square goodness-of-fit example: 315, 108, 101
    and 32 peas against 9:3:3:1 give chi-square 0.47 on 3 degrees of freedom, p = 0.925."""
    check = check_sample_ratio([315, 108, 101, 32], [9, 3, 3, 1])
    assert check.statistic == pytest.approx(0.470, abs=5e-4)
    assert check.p_value == pytest.approx(0.925, abs=5e-4)
    assert not check.mismatch


def test_weights_are_shares_in_any_unit():
    assert check_sample_ratio([800, 200], [80, 20]).p_value == pytest.approx(1.0)
    assert check_sample_ratio([500, 500]).p_value == pytest.approx(1.0)


def test_warning_is_loud_only_on_a_mismatch():
    ok = check_sample_ratio([5003, 4997])
    assert sample_ratio_warning(ok, ["A", "B"]) is None
    bad = check_sample_ratio([821_588, 815_482])
    text = sample_ratio_warning(bad, ["Control", "B"])
    assert text.startswith("WARNING - SAMPLE RATIO MISMATCH")
    assert "Control 50.2 % / Variant B 49.8 %" in text
    assert "50.0 % / 50.0 %" in text
    assert "cannot be trusted" in text


@pytest.mark.parametrize(
    ("counts", "weights", "message"),
    [
        ([10], None, "at least two"),
        ([10, 10], [1], "2 variants"),
        ([10, 10], [1, 0], "positive"),
        ([0, 0], None, "not all zero"),
    ],
)
def test_bad_inputs_are_refused(counts, weights, message):
    with pytest.raises(ValueError, match=message):
        check_sample_ratio(counts, weights)
