"""How many customers a test needs, or how small an effect a given audience can detect.

Answering this before sending stops the most common A/B mistake in e-mail: splitting 2,000
recipients five ways and reading noise as a winner. All calculations are for a two-sided test of
one variant against the baseline with equal group sizes, at significance alpha and the given power.

Proportions follow R's ``power.prop.test`` (the normal approximation with the pooled rate under no
difference and the two separate rates under the alternative):

    n = (z_{1-alpha/2} sqrt(2 pbar qbar) + z_{power} sqrt(p1 q1 + p2 q2))^2 / (p2 - p1)^2

Means follow R's ``power.t.test`` for two samples: the exact noncentral t power with 2(n - 1)
degrees of freedom and noncentrality sqrt(n / 2) delta / sd, solved for n. Both leave out the
negligible chance of rejecting in the wrong direction (R's default ``strict = FALSE``).

A relative minimum detectable effect is a fraction of the baseline (0.1 for "10 % better").
"""

from __future__ import annotations

import math

from scipy import optimize, stats

# Past this per-variant size the t and normal answers agree to well under one customer.
_NORMAL_ENOUGH = 10**7
_MAX_SAMPLE_SIZE = 10**15


def _check_design(alpha: float, power: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    if not alpha / 2 < power < 1:
        raise ValueError(f"power must be above alpha / 2 and below 1, got {power!r}")


def _target_rate(baseline_rate: float, mde: float, relative: bool) -> float:
    if not 0 < baseline_rate < 1:
        raise ValueError(f"baseline_rate must be between 0 and 1, got {baseline_rate!r}")
    if not mde > 0:
        raise ValueError(f"mde must be positive, got {mde!r}")
    target = baseline_rate * (1 + mde) if relative else baseline_rate + mde
    if not target < 1:
        raise ValueError(
            f"the baseline rate plus the effect ({target!r}) must stay below 1; use a smaller mde"
        )
    return target


def power_for_proportions(
    baseline_rate: float, target_rate: float, n: float, *, alpha: float = 0.05
) -> float:
    """Power of the two-sided two-proportion test with n customers per variant."""
    z_alpha = stats.norm.isf(alpha / 2)
    pooled = (baseline_rate + target_rate) / 2
    spread_null = math.sqrt(2 * pooled * (1 - pooled))
    spread_alternative = math.sqrt(baseline_rate * (1 - baseline_rate) + target_rate * (1 - target_rate))
    distance = math.sqrt(n) * abs(target_rate - baseline_rate)
    return float(stats.norm.cdf((distance - z_alpha * spread_null) / spread_alternative))


def sample_size_for_proportions(
    baseline_rate: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Customers needed per variant (not rounded) to detect the rate moving by ``mde``."""
    _check_design(alpha, power)
    target = _target_rate(baseline_rate, mde, relative)
    pooled = (baseline_rate + target) / 2
    numerator = float(stats.norm.isf(alpha / 2)) * math.sqrt(2 * pooled * (1 - pooled)) + float(
        stats.norm.ppf(power)
    ) * math.sqrt(baseline_rate * (1 - baseline_rate) + target * (1 - target))
    if not target - baseline_rate > 0:
        raise ValueError("the effect is too small to detect with any realistic audience; use a larger mde")
    # Plain floats multiply to inf instead of warning when the effect is absurdly small.
    root = numerator / (target - baseline_rate)
    size = root * root
    if not size <= _MAX_SAMPLE_SIZE:
        raise ValueError("the effect is too small to detect with any realistic audience; use a larger mde")
    return size


def mde_for_proportions(
    baseline_rate: float,
    n: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Smallest increase of the rate that ``n`` customers per variant detect with the given power."""
    _check_design(alpha, power)
    if not 0 < baseline_rate < 1:
        raise ValueError(f"baseline_rate must be between 0 and 1, got {baseline_rate!r}")
    if not n >= 2:
        raise ValueError(f"sample_size_per_variant must be at least 2, got {n!r}")

    def shortfall(target: float) -> float:
        return power_for_proportions(baseline_rate, target, n, alpha=alpha) - power

    ceiling = 1 - 1e-12
    if shortfall(ceiling) < 0:
        raise ValueError(
            f"even a rate of 100 % cannot be told from {baseline_rate!r} with {n!r} customers per variant"
        )
    target = optimize.brentq(shortfall, baseline_rate, ceiling, xtol=1e-14, rtol=1e-12)
    absolute = target - baseline_rate
    return absolute / baseline_rate if relative else absolute


def power_for_means(delta: float, standard_deviation: float, n: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample t test with n customers per variant (R's power.t.test)."""
    df = 2 * (n - 1)
    noncentrality = math.sqrt(n / 2) * abs(delta) / standard_deviation
    if n > _NORMAL_ENOUGH:
        return float(stats.norm.sf(stats.norm.isf(alpha / 2) - noncentrality))
    critical = stats.t.isf(alpha / 2, df)
    return float(stats.nct.sf(critical, df, noncentrality))


def _check_means(baseline_mean: float | None, standard_deviation: float, relative: bool) -> None:
    if not standard_deviation > 0 or not math.isfinite(standard_deviation):
        raise ValueError(f"standard_deviation must be a positive number, got {standard_deviation!r}")
    if relative and (baseline_mean is None or baseline_mean == 0 or not math.isfinite(baseline_mean)):
        raise ValueError("a relative mde for a mean needs a non-zero baseline_mean")


def sample_size_for_means(
    mde: float,
    standard_deviation: float,
    *,
    baseline_mean: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Customers needed per variant (not rounded) to detect the mean moving by ``mde``."""
    _check_design(alpha, power)
    _check_means(baseline_mean, standard_deviation, relative)
    if not mde > 0:
        raise ValueError(f"mde must be positive, got {mde!r}")
    delta = mde * abs(baseline_mean) if relative else mde
    if not delta > 0:
        raise ValueError("the effect is too small to detect with any realistic audience; use a larger mde")
    root = (float(stats.norm.isf(alpha / 2)) + float(stats.norm.ppf(power))) * standard_deviation / delta
    normal_size = 2 * root * root
    if not normal_size <= _MAX_SAMPLE_SIZE:
        raise ValueError("the effect is too small to detect with any realistic audience; use a larger mde")
    if normal_size > _NORMAL_ENOUGH:
        return normal_size

    def shortfall(n: float) -> float:
        return power_for_means(delta, standard_deviation, n, alpha=alpha) - power

    upper = max(4.0, 2 * normal_size + 10)
    if shortfall(2.0) >= 0:
        return 2.0
    return optimize.brentq(shortfall, 2.0, upper, xtol=1e-10, rtol=1e-12)


def mde_for_means(
    standard_deviation: float,
    n: float,
    *,
    baseline_mean: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Smallest change of the mean that ``n`` customers per variant detect with the given power."""
    _check_design(alpha, power)
    _check_means(baseline_mean, standard_deviation, relative)
    if not n >= 2:
        raise ValueError(f"sample_size_per_variant must be at least 2, got {n!r}")

    def shortfall(delta: float) -> float:
        return power_for_means(delta, standard_deviation, n, alpha=alpha) - power

    upper = standard_deviation
    while shortfall(upper) < 0:
        upper *= 2
    delta = optimize.brentq(shortfall, 0.0, upper, xtol=1e-14 * upper, rtol=1e-12)
    return delta / abs(baseline_mean) if relative else delta
