"""The plain-language sentences: wording follows the numbers, never more confident than they are."""

from experiments.stats.types import Comparison
from experiments.stats.verdict import describe_comparison, display_name


def frequentist(effect, low, high, level=0.95):
    return Comparison(effect=effect, ci_low=low, ci_high=high, confidence_level=level, p_value=0.01)


def test_a_clear_relative_rise_reads_like_the_issue_asks():
    text = describe_comparison(
        frequentist(0.12, 0.04, 0.20),
        variant="B",
        baseline="A",
        metric="proportion",
        method="frequentist",
        relative=True,
        metric_label="click rate",
    )
    assert text == "Variant B raised click rate by 12 % (95 % CI 4 % to 20 %)."


def test_a_clear_absolute_fall_in_percentage_points():
    text = describe_comparison(
        frequentist(-0.012, -0.019, -0.005),
        variant="Subject line 2",
        baseline="Control",
        metric="proportion",
        method="frequentist",
        relative=False,
    )
    assert text == ("Subject line 2 lowered conversion rate by 1.2 percentage points (95 % CI -1.9 to -0.5).")


def test_no_clear_difference_shows_how_large_an_effect_is_still_plausible():
    text = describe_comparison(
        frequentist(0.031, -0.012, 0.074),
        variant="B",
        baseline="A",
        metric="mean",
        method="sequential",
        relative=True,
        metric_label="revenue per recipient",
    )
    assert text == (
        "No clear difference in revenue per recipient between Variant B and Variant A: the change was "
        "+3.1 % (95 % always-valid CI -1.2 % to 7.4 %), which is consistent with no effect."
    )


def test_corrected_intervals_say_their_level():
    text = describe_comparison(
        frequentist(2.5, 0.4, 4.6, level=1 - 0.05 / 3),
        variant="C",
        baseline="A",
        metric="mean",
        method="frequentist",
        relative=False,
    )
    assert text == "Variant C raised average value per customer by 2.5 (98.3 % CI 0.4 to 4.6)."


def test_bayesian_wording_follows_the_chance_to_win():
    def bayes(chance):
        return Comparison(
            effect=0.012,
            ci_low=0.004,
            ci_high=0.02,
            confidence_level=0.95,
            chance_to_win=chance,
            expected_loss=0.00004,
        )

    common = {
        "variant": "B",
        "baseline": "A",
        "metric": "proportion",
        "method": "bayesian",
        "relative": False,
    }
    assert describe_comparison(bayes(0.998), **common) == (
        "Variant B is probably better than Variant A on conversion rate: 99.8 % chance to beat Variant A, "
        "best estimate +1.2 percentage points (95 % credible interval 0.4 to 2.0); "
        "expected loss if Variant B is chosen: 0.0040 percentage points."
    )
    assert describe_comparison(bayes(0.96), **common).startswith(
        "No clear winner between Variant B and Variant A"
    )
    assert describe_comparison(bayes(0.01), **common).startswith("Variant B is probably worse than Variant A")


def test_missing_numbers_are_explained():
    text = describe_comparison(
        Comparison(
            None, None, None, None, note="The baseline's mean is zero, so a relative change is not defined."
        ),
        variant="B",
        baseline="A",
        metric="mean",
        method="frequentist",
        relative=True,
    )
    assert text == (
        "Variant B compared with Variant A on average value per customer: "
        "The baseline's mean is zero, so a relative change is not defined."
    )


def test_display_names():
    assert display_name("B") == "Variant B"
    assert display_name("Control") == "Control"
    assert display_name("variant 3") == "variant 3"
    assert display_name("Free shipping") == "Free shipping"
