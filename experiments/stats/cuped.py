"""CUPED: use what customers did before the test to see its effect more sharply.

Much of the spread in revenue per recipient during a test is just who the recipients are: big
spenders before are big spenders during. Subtracting theta (x - mean x), where x is the same
customer's value in a pre-period, removes that part of the variance without biasing the comparison,
because the pre-period cannot have been affected by the variant (Deng, Xu, Kohavi and Walker,
"Improving the Sensitivity of Online Controlled Experiments by Utilizing Pre-Experiment Data",
WSDM 2013). The variance shrinks by the factor 1 - rho^2, rho being the correlation between the
periods, which is the same as having 1 / (1 - rho^2) times more customers.

theta is the pooled within-variant regression slope of the outcome on the covariate, so the
adjusted difference equals the treatment coefficient of the regression y ~ variant + x (ANCOVA),
and everything is computed from per-variant totals: sum of x, sum of x^2 and sum of x*y.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from experiments.stats.types import MetricSums, VariantEstimate, centred_sum_of_squares, finite_number


@dataclass(frozen=True, slots=True)
class PrePeriodSums:
    """Totals of the pre-period covariate x over the same customers as the metric's totals."""

    pre_sum: float
    pre_sum_squares: float
    sum_products: float

    def __post_init__(self) -> None:
        for name in ("pre_sum", "pre_sum_squares", "sum_products"):
            object.__setattr__(self, name, finite_number(name, getattr(self, name)))
        if self.pre_sum_squares < 0:
            raise ValueError(f"pre_sum_squares must not be negative, got {self.pre_sum_squares!r}")


@dataclass(frozen=True, slots=True)
class CupedAdjustment:
    theta: float
    estimates: tuple[VariantEstimate, ...]
    variance_reduction: float  # share of the outcome's within-variant variance removed


def centred_moments(metric: MetricSums, covariate: PrePeriodSums) -> tuple[float, float, float]:
    n = metric.n
    syy = centred_sum_of_squares(n, metric.sum, metric.sum_squares, "sum_squares")
    sxx = centred_sum_of_squares(n, covariate.pre_sum, covariate.pre_sum_squares, "pre_sum_squares")
    sxy = covariate.sum_products - covariate.pre_sum * metric.sum / n
    # Cauchy-Schwarz: |sxy| <= sqrt(sxx syy) for any real values. The slack is the rounding error of
    # centring raw totals (large when the mean dwarfs the spread); beyond it the totals clash.
    slack_xx = 1e-9 * max(covariate.pre_sum_squares, 1e-300)
    slack_yy = 1e-9 * max(metric.sum_squares, 1e-300)
    slack_xy = 1e-9 * (abs(covariate.sum_products) + abs(covariate.pre_sum * metric.sum / n))
    if abs(sxy) > math.sqrt((sxx + slack_xx) * (syy + slack_yy)) + slack_xy:
        raise ValueError(
            "sum_products is inconsistent with the sums of squares (|cov(x, y)| exceeds sd(x) sd(y))"
        )
    return sxx, sxy, syy


def cuped_adjust(metrics: Sequence[MetricSums], covariates: Sequence[PrePeriodSums]) -> CupedAdjustment:
    """Adjusted mean and per-customer variance of each variant, with one theta shared by all."""
    if len(metrics) != len(covariates):
        raise ValueError(f"{len(covariates)} pre-period totals given for {len(metrics)} variants")
    moments = [centred_moments(m, c) for m, c in zip(metrics, covariates, strict=True)]
    total_sxx = sum(sxx for sxx, _, _ in moments)
    total_sxy = sum(sxy for _, sxy, _ in moments)
    total_syy = sum(syy for _, _, syy in moments)
    # A covariate that never varies carries no information: leave the metric as it is. "Never
    # varies" includes a centred sum of squares at the rounding level of the raw totals, where the
    # slope would be noise divided by noise.
    rounding_level = max(1e-9 * sum(c.pre_sum_squares for c in covariates), 1e-300)
    theta = total_sxy / total_sxx if total_sxx > rounding_level else 0.0
    overall_pre_mean = sum(c.pre_sum for c in covariates) / sum(m.n for m in metrics)
    estimates = []
    residual_total = 0.0
    for metric, covariate, (sxx, sxy, syy) in zip(metrics, covariates, moments, strict=True):
        # theta * (theta * sxx) rather than theta**2 * sxx: a large slope on a tiny spread stays finite.
        residual = max(0.0, syy - 2 * theta * sxy + theta * (theta * sxx))
        residual_total += residual
        adjusted_mean = metric.mean - theta * (covariate.pre_sum / metric.n - overall_pre_mean)
        if not (math.isfinite(adjusted_mean) and math.isfinite(residual)):
            raise ValueError("the pre-period totals are too extreme to adjust the metric with")
        estimates.append(VariantEstimate(n=metric.n, mean=adjusted_mean, variance=residual / (metric.n - 1)))
    reduction = 1 - residual_total / total_syy if total_syy > 0 else 0.0
    return CupedAdjustment(theta=theta, estimates=tuple(estimates), variance_reduction=reduction)
