"""One call that turns an experiment's per-variant totals into everything its results page shows.

The results page, the API, the winner flow and the command line all need the same sequence - check
the split, reduce the totals (optionally with CUPED), compare every variant with the baseline,
correct for the number of comparisons, word the verdicts - and they must never disagree, so it
lives here once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from experiments.stats import bayesian, frequentist, sequential
from experiments.stats.cuped import CupedAdjustment, PrePeriodSums, cuped_adjust
from experiments.stats.multiple_testing import CORRECTIONS, Correction, adjust_p_values, interval_alphas
from experiments.stats.srm import SampleRatioCheck, check_sample_ratio
from experiments.stats.types import Comparison, ConversionCounts, MetricSums, VariantEstimate
from experiments.stats.verdict import describe_comparison, sample_ratio_warning

Metric = Literal["proportion", "mean"]
Method = Literal["frequentist", "bayesian", "sequential"]
METRICS: tuple[str, ...] = ("proportion", "mean")
METHODS: tuple[str, ...] = ("frequentist", "bayesian", "sequential")
MIN_VARIANTS = 2
MAX_VARIANTS = 8


@dataclass(frozen=True, slots=True)
class VariantComparison:
    variant: str
    baseline: str
    comparison: Comparison
    verdict: str


@dataclass(frozen=True, slots=True)
class ExperimentAnalysis:
    metric: str
    method: str
    relative: bool
    alpha: float
    correction: str
    sample_ratio: SampleRatioCheck
    srm_warning: str | None
    comparisons: tuple[VariantComparison, ...]
    cuped: CupedAdjustment | None = None


def _check_inputs(
    names: Sequence[str],
    data: Sequence[ConversionCounts | MetricSums],
    metric: str,
    method: str,
    alpha: float,
    correction: str,
) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; expected one of {', '.join(CORRECTIONS)}")
    if method == "bayesian" and correction != "none":
        raise ValueError(
            "corrections for multiple comparisons apply to p-values; the bayesian method has none"
        )
    if not 0 < alpha <= 0.5:
        raise ValueError(f"alpha must be above 0 and at most 0.5, got {alpha!r}")
    if not MIN_VARIANTS <= len(data) <= MAX_VARIANTS:
        raise ValueError(f"an experiment has {MIN_VARIANTS} to {MAX_VARIANTS} variants, got {len(data)}")
    if len(names) != len(data):
        raise ValueError(f"{len(names)} names given for {len(data)} variants")
    if len(set(names)) != len(names):
        raise ValueError("variant names must be unique")
    expected_type = ConversionCounts if metric == "proportion" else MetricSums
    for name, item in zip(names, data, strict=True):
        if not isinstance(item, expected_type):
            raise ValueError(f"variant {name!r}: a {metric} metric needs {expected_type.__name__}")


def analyze_experiment(
    names: Sequence[str],
    data: Sequence[ConversionCounts | MetricSums],
    *,
    metric: Metric,
    method: Method = "frequentist",
    relative: bool = False,
    alpha: float = 0.05,
    correction: Correction = "none",
    weights: Sequence[float] | None = None,
    covariates: Sequence[PrePeriodSums] | None = None,
    seed: int = bayesian.DEFAULT_SEED,
    planned_sample_size: int = sequential.DEFAULT_PLANNED_SAMPLE_SIZE,
    metric_label: str | None = None,
) -> ExperimentAnalysis:
    """Compare every variant with the first one (the baseline).

    With ``covariates`` (pre-period totals per variant) the metric is CUPED-adjusted first and every
    method works on the adjusted means with the normal (or Welch t) machinery, proportions included.
    """
    _check_inputs(names, data, metric, method, alpha, correction)
    sample_ratio = check_sample_ratio([item.n for item in data], weights)

    adjustment: CupedAdjustment | None = None
    estimates: list[VariantEstimate]
    if covariates is not None:
        sums = [item.as_sums() if isinstance(item, ConversionCounts) else item for item in data]
        adjustment = cuped_adjust(sums, covariates)
        estimates = list(adjustment.estimates)
    else:
        estimates = [item.estimate() for item in data]

    def compare(index: int, level_alpha: float) -> Comparison:
        base, other = estimates[0], estimates[index]
        if method == "frequentist":
            if metric == "proportion" and adjustment is None:
                return frequentist.compare_estimates(
                    base, other, alpha=level_alpha, relative=relative, use_t=False
                )
            return frequentist.compare_estimates(base, other, alpha=level_alpha, relative=relative)
        if method == "sequential":
            return sequential.compare_sequentially(
                base,
                other,
                alpha=level_alpha,
                relative=relative,
                planned_sample_size=planned_sample_size,
                tuning_alpha=alpha,
            )
        if metric == "proportion" and adjustment is None:
            baseline_counts, variant_counts = data[0], data[index]
            assert isinstance(baseline_counts, ConversionCounts)
            assert isinstance(variant_counts, ConversionCounts)
            return bayesian.compare_proportions_bayesian(
                baseline_counts, variant_counts, alpha=level_alpha, relative=relative, seed=seed
            )
        return bayesian.compare_means_bayesian(base, other, alpha=level_alpha, relative=relative)

    results = [compare(index, alpha) for index in range(1, len(data))]
    if correction != "none":
        results = _corrected(results, alpha, correction, compare)

    comparisons = tuple(
        VariantComparison(
            variant=names[index],
            baseline=names[0],
            comparison=result,
            verdict=describe_comparison(
                result,
                variant=names[index],
                baseline=names[0],
                metric=metric,
                method=method,
                relative=relative,
                metric_label=metric_label,
            ),
        )
        for index, result in enumerate(results, start=1)
    )
    return ExperimentAnalysis(
        metric=metric,
        method=method,
        relative=relative,
        alpha=alpha,
        correction=correction,
        sample_ratio=sample_ratio,
        srm_warning=sample_ratio_warning(sample_ratio, names),
        comparisons=comparisons,
        cuped=adjustment,
    )


def _corrected(
    results: list[Comparison],
    alpha: float,
    correction: Correction,
    compare: Callable[[int, float], Comparison],
) -> list[Comparison]:
    """Adjusted p-values and matching intervals; comparisons without a p-value stay out of the family."""
    tested = [
        i for i, result in enumerate(results) if result.p_value is not None and math.isfinite(result.p_value)
    ]
    if len(tested) < 2:
        return results
    raw = [results[i].p_value for i in tested]
    adjusted = adjust_p_values(raw, correction)
    levels = interval_alphas(raw, alpha, correction)
    corrected = list(results)
    for position, i in enumerate(tested):
        redone = compare(i + 1, float(levels[position]))
        corrected[i] = replace(redone, p_value=float(adjusted[position]))
    return corrected
