"""CUPED from per-variant totals against the regression it is equivalent to."""

import numpy as np
import pytest

from experiments.stats.cuped import PrePeriodSums, cuped_adjust
from experiments.stats.frequentist import compare_estimates
from experiments.stats.types import MetricSums


def simulated_variants(seed=1, sizes=(3000, 2500, 2800), lifts=(0.0, 0.3, -0.1)):
    rng = np.random.default_rng(seed)
    groups = []
    for size, lift in zip(sizes, lifts, strict=True):
        before = rng.gamma(2.0, 5.0, size=size)
        during = 2.0 + 0.8 * before + lift + rng.normal(0, 4.0, size=size)
        groups.append((before, during))
    return groups


def totals(groups):
    metrics = [MetricSums(n=y.size, sum=float(y.sum()), sum_squares=float(y @ y)) for _, y in groups]
    covariates = [
        PrePeriodSums(pre_sum=float(x.sum()), pre_sum_squares=float(x @ x), sum_products=float(x @ y))
        for x, y in groups
    ]
    return metrics, covariates


def test_adjusted_differences_equal_the_ancova_treatment_coefficients():
    """Frisch-Waugh-Lovell: in y ~ variant dummies + x the slope is the pooled within-variant slope,
    and each dummy's coefficient is the difference of the CUPED-adjusted means (Deng et al. 2013
    use the same theta). Checked against a least-squares fit on the raw rows."""
    groups = simulated_variants()
    metrics, covariates = totals(groups)
    adjustment = cuped_adjust(metrics, covariates)
    x = np.concatenate([g[0] for g in groups])
    y = np.concatenate([g[1] for g in groups])
    labels = np.concatenate([np.full(g[0].size, i) for i, g in enumerate(groups)])
    design = np.column_stack([np.ones_like(x), labels == 1, labels == 2, x]).astype(float)
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    means = [e.mean for e in adjustment.estimates]
    assert adjustment.theta == pytest.approx(coefficients[3], rel=1e-9)
    assert means[1] - means[0] == pytest.approx(coefficients[1], rel=1e-9)
    assert means[2] - means[0] == pytest.approx(coefficients[2], rel=1e-9)


def test_variance_shrinks_by_the_squared_correlation():
    groups = simulated_variants(seed=2)
    metrics, covariates = totals(groups)
    adjustment = cuped_adjust(metrics, covariates)
    centred = [(x - x.mean(), y - y.mean()) for x, y in groups]
    sxy = sum(float(cx @ cy) for cx, cy in centred)
    sxx = sum(float(cx @ cx) for cx, _ in centred)
    syy = sum(float(cy @ cy) for _, cy in centred)
    assert adjustment.variance_reduction == pytest.approx(sxy**2 / (sxx * syy), rel=1e-9)
    for estimate, metric in zip(adjustment.estimates, metrics, strict=True):
        assert estimate.variance < metric.estimate().variance


def test_cuped_narrows_the_interval_without_moving_the_truth():
    """Here rho^2 = 0.8^2 var(x) / (0.8^2 var(x) + 16) = 2/3, so the interval should shrink to
    about sqrt(1 - rho^2) = 0.58 of its width and still contain the true lift 0.5."""
    groups = simulated_variants(seed=3, sizes=(4000, 4000, 4000), lifts=(0.0, 0.5, 0.0))
    metrics, covariates = totals(groups)
    adjusted = cuped_adjust(metrics, covariates).estimates
    raw = compare_estimates(metrics[0].estimate(), metrics[1].estimate())
    sharper = compare_estimates(adjusted[0], adjusted[1])
    assert sharper.ci_high - sharper.ci_low < 0.65 * (raw.ci_high - raw.ci_low)
    assert sharper.ci_low < 0.5 < sharper.ci_high


def test_a_constant_covariate_changes_nothing():
    metrics = [MetricSums(n=4, sum=10.0, sum_squares=30.0), MetricSums(n=4, sum=12.0, sum_squares=40.0)]
    constant = [PrePeriodSums(8.0, 16.0, 20.0), PrePeriodSums(8.0, 16.0, 24.0)]
    adjustment = cuped_adjust(metrics, constant)
    assert adjustment.theta == 0.0
    assert [e.mean for e in adjustment.estimates] == [2.5, 3.0]


def test_impossible_cross_products_are_refused():
    metrics = [MetricSums(n=3, sum=6.0, sum_squares=14.0), MetricSums(n=3, sum=6.0, sum_squares=14.0)]
    impossible = [PrePeriodSums(6.0, 14.0, 100.0), PrePeriodSums(6.0, 14.0, 14.0)]
    with pytest.raises(ValueError, match="sum_products is inconsistent"):
        cuped_adjust(metrics, impossible)
