"""The whole analysis of an experiment: split check, comparisons, corrections, CUPED, verdicts."""

import numpy as np
import pytest

from experiments.stats.analysis import analyze_experiment
from experiments.stats.cuped import PrePeriodSums
from experiments.stats.frequentist import compare_proportions
from experiments.stats.multiple_testing import adjust_p_values
from experiments.stats.types import ConversionCounts, MetricSums

NAMES = ["Control", "B", "C", "D"]
COUNTS = [
    ConversionCounts(10_000, 500),
    ConversionCounts(10_000, 590),
    ConversionCounts(10_000, 545),
    ConversionCounts(10_000, 480),
]


def test_holm_adjusts_p_values_and_widens_intervals_to_match():
    plain = analyze_experiment(NAMES, COUNTS, metric="proportion")
    holm = analyze_experiment(NAMES, COUNTS, metric="proportion", correction="holm")
    raw = [row.comparison.p_value for row in plain.comparisons]
    assert [row.comparison.p_value for row in holm.comparisons] == pytest.approx(
        list(adjust_p_values(raw, "holm"))
    )
    for before, after in zip(plain.comparisons, holm.comparisons, strict=True):
        assert after.comparison.effect == before.comparison.effect
        assert after.comparison.ci_low <= before.comparison.ci_low
        assert after.comparison.confidence_level >= 0.95
        significant = after.comparison.ci_low > 0 or after.comparison.ci_high < 0
        assert significant == (after.comparison.p_value < 0.05)


def test_each_row_is_the_plain_pairwise_comparison_without_correction():
    result = analyze_experiment(NAMES, COUNTS, metric="proportion", relative=True)
    assert result.comparisons[0].comparison == compare_proportions(COUNTS[0], COUNTS[1], relative=True)
    assert [row.variant for row in result.comparisons] == ["B", "C", "D"]
    assert {row.baseline for row in result.comparisons} == {"Control"}
    assert result.comparisons[0].verdict.startswith("Variant B raised conversion rate by 18 %")


def test_sample_ratio_mismatch_is_flagged_against_the_configured_weights():
    even = analyze_experiment(NAMES[:2], COUNTS[:2], metric="proportion", weights=[1, 1])
    assert even.srm_warning is None and even.sample_ratio.p_value == pytest.approx(1.0)
    skewed = analyze_experiment(NAMES[:2], COUNTS[:2], metric="proportion", weights=[0.45, 0.55])
    assert skewed.sample_ratio.mismatch
    assert "SAMPLE RATIO MISMATCH" in skewed.srm_warning


def test_each_method_fills_its_own_fields():
    frequentist = analyze_experiment(NAMES[:2], COUNTS[:2], metric="proportion").comparisons[0].comparison
    bayesian = analyze_experiment(NAMES[:2], COUNTS[:2], metric="proportion", method="bayesian")
    sequential = analyze_experiment(NAMES[:2], COUNTS[:2], metric="proportion", method="sequential")
    assert frequentist.chance_to_win is None and frequentist.p_value is not None
    assert bayesian.comparisons[0].comparison.p_value is None
    assert bayesian.comparisons[0].comparison.chance_to_win > 0.99
    seq = sequential.comparisons[0].comparison
    assert seq.chance_to_win is None and seq.p_value > frequentist.p_value
    assert seq.ci_high - seq.ci_low > frequentist.ci_high - frequentist.ci_low


def test_cuped_runs_through_the_analysis_for_revenue():
    rng = np.random.default_rng(4)
    metrics, covariates = [], []
    for lift in (0.0, 0.4):
        x = rng.gamma(2.0, 5.0, size=3000)
        y = 1.0 + 0.9 * x + lift + rng.normal(0, 3.0, size=3000)
        metrics.append(MetricSums(n=3000, sum=float(y.sum()), sum_squares=float(y @ y)))
        covariates.append(PrePeriodSums(float(x.sum()), float(x @ x), float(x @ y)))
    raw = analyze_experiment(["A", "B"], metrics, metric="mean")
    adjusted = analyze_experiment(["A", "B"], metrics, metric="mean", covariates=covariates)
    assert adjusted.cuped.variance_reduction > 0.5
    width = lambda result: result.comparisons[0].comparison.ci_high - result.comparisons[0].comparison.ci_low  # noqa: E731
    assert width(adjusted) < width(raw)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "proportion", "method": "bayesian", "correction": "holm"}, "bayesian method has none"),
        ({"metric": "revenue"}, "unknown metric"),
        ({"metric": "mean"}, "needs MetricSums"),
        ({"metric": "proportion", "alpha": 0.7}, "alpha"),
    ],
)
def test_inconsistent_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        analyze_experiment(NAMES[:2], COUNTS[:2], **kwargs)


def test_names_must_be_unique_and_match_the_variants():
    with pytest.raises(ValueError, match="unique"):
        analyze_experiment(["A", "A"], COUNTS[:2], metric="proportion")
    with pytest.raises(ValueError, match="names given"):
        analyze_experiment(["A"], COUNTS[:2], metric="proportion")
