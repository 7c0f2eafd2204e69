"""A/B test statistics as a pure package: numpy and scipy only, no Django.

The results page, the winner flow, the API and the ``python -m experiments.stats`` command all
call into this package, and a notebook can too. Methods and formulas are described for analysts
and marketers in docs/statistics.md.
"""

from experiments.stats.analysis import ExperimentAnalysis, VariantComparison, analyze_experiment
from experiments.stats.bandit import chance_to_be_best, thompson_allocation
from experiments.stats.bayesian import compare_means_bayesian, compare_proportions_bayesian
from experiments.stats.cuped import CupedAdjustment, PrePeriodSums, cuped_adjust
from experiments.stats.frequentist import compare_estimates, compare_means, compare_proportions
from experiments.stats.multiple_testing import adjust_p_values, interval_alphas
from experiments.stats.power import (
    mde_for_means,
    mde_for_proportions,
    power_for_means,
    power_for_proportions,
    sample_size_for_means,
    sample_size_for_proportions,
)
from experiments.stats.sequential import compare_sequentially
from experiments.stats.srm import SampleRatioCheck, check_sample_ratio
from experiments.stats.types import Comparison, ConversionCounts, MetricSums, VariantEstimate
from experiments.stats.verdict import describe_comparison, sample_ratio_warning

__all__ = [
    "Comparison",
    "ConversionCounts",
    "CupedAdjustment",
    "ExperimentAnalysis",
    "MetricSums",
    "PrePeriodSums",
    "SampleRatioCheck",
    "VariantComparison",
    "VariantEstimate",
    "adjust_p_values",
    "analyze_experiment",
    "chance_to_be_best",
    "check_sample_ratio",
    "compare_estimates",
    "compare_means",
    "compare_means_bayesian",
    "compare_proportions",
    "compare_proportions_bayesian",
    "compare_sequentially",
    "cuped_adjust",
    "describe_comparison",
    "interval_alphas",
    "mde_for_means",
    "mde_for_proportions",
    "power_for_means",
    "power_for_proportions",
    "sample_ratio_warning",
    "sample_size_for_means",
    "sample_size_for_proportions",
    "thompson_allocation",
]
