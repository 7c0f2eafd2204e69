"""What the statistics read about each variant, and what they say back.

Every method works from totals a database aggregates cheaply (COUNT, SUM, SUM of squares), so
per-customer rows never have to leave PostgreSQL and a notebook can reproduce any figure from a
handful of numbers. The dataclasses check their own invariants because an impossible total (more
conversions than recipients, a sum of squares too small for its sum) would otherwise come back as a
confident-looking but meaningless result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Beyond this the float arithmetic on counts stops being exact, and no campaign is that large.
MAX_CUSTOMERS = 10**12


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if value > MAX_CUSTOMERS:
        raise ValueError(f"{name} must be at most {MAX_CUSTOMERS}, got {value}")


def finite_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large to compute with") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def centred_sum_of_squares(n: int, total: float, total_squares: float, name: str) -> float:
    """Sum of squared deviations from the mean, refusing totals no set of values could produce.

    A tiny negative remainder is float rounding on constant data and is read as zero; a larger one
    means the totals were computed over different rows (or one of them is simply wrong).
    """
    mean = total / n
    centred = total_squares - mean * total
    tolerance = 1e-9 * max(abs(total_squares), abs(mean * total), 1e-300)
    if centred < -tolerance:
        raise ValueError(
            f"{name} ({total_squares!r}) is smaller than sum squared over n ({mean * total!r}), "
            "which no set of values can produce"
        )
    return max(centred, 0.0)


@dataclass(frozen=True, slots=True)
class VariantEstimate:
    """A variant's mean and the spread of one customer's value around it.

    Every comparison reduces to this: the proportions, raw sums and CUPED-adjusted sums all end up
    as (n, mean, per-customer variance), so the tests of each method are written once.
    """

    n: int
    mean: float
    variance: float

    def __post_init__(self) -> None:
        _check_count("n", self.n, minimum=1)
        object.__setattr__(self, "mean", finite_number("mean", self.mean))
        object.__setattr__(self, "variance", finite_number("variance", self.variance))
        if self.variance < 0:
            raise ValueError(f"variance must not be negative, got {self.variance!r}")

    @property
    def variance_of_mean(self) -> float:
        return self.variance / self.n


@dataclass(frozen=True, slots=True)
class ConversionCounts:
    """How many customers a variant reached and how many of them converted (opened, clicked, bought)."""

    n: int
    conversions: int

    def __post_init__(self) -> None:
        _check_count("n", self.n, minimum=1)
        _check_count("conversions", self.conversions, minimum=0)
        if self.conversions > self.n:
            raise ValueError(f"conversions ({self.conversions}) must not exceed n ({self.n})")

    @property
    def rate(self) -> float:
        return self.conversions / self.n

    def estimate(self) -> VariantEstimate:
        """Bernoulli variance p(1 - p), the textbook (Wald) variance of a proportion."""
        rate = self.rate
        return VariantEstimate(n=self.n, mean=rate, variance=rate * (1.0 - rate))

    def as_sums(self) -> MetricSums:
        """A 0/1 outcome's sum and sum of squares are both the conversion count (used by CUPED)."""
        return MetricSums(n=self.n, sum=float(self.conversions), sum_squares=float(self.conversions))


@dataclass(frozen=True, slots=True)
class MetricSums:
    """Totals of a per-customer value (revenue, orders) over a variant's customers."""

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        _check_count("n", self.n, minimum=2)
        object.__setattr__(self, "sum", finite_number("sum", self.sum))
        object.__setattr__(self, "sum_squares", finite_number("sum_squares", self.sum_squares))
        if self.sum_squares < 0:
            raise ValueError(f"sum_squares must not be negative, got {self.sum_squares!r}")
        centred_sum_of_squares(self.n, self.sum, self.sum_squares, "sum_squares")

    @property
    def mean(self) -> float:
        return self.sum / self.n

    def estimate(self) -> VariantEstimate:
        """Sample variance with n - 1, as Welch's test expects."""
        centred = centred_sum_of_squares(self.n, self.sum, self.sum_squares, "sum_squares")
        return VariantEstimate(n=self.n, mean=self.mean, variance=centred / (self.n - 1))


@dataclass(frozen=True, slots=True)
class Comparison:
    """One variant against the baseline, in the shape every method shares.

    Fields a method does not produce are None (a Bayesian analysis has no p-value, a frequentist one
    no chance to win); ``note`` says why a value the method would produce is missing, for example a
    relative effect against a baseline whose mean is zero.
    """

    effect: float | None
    ci_low: float | None
    ci_high: float | None
    confidence_level: float | None
    p_value: float | None = None
    chance_to_win: float | None = None
    expected_loss: float | None = None
    note: str | None = None

    @property
    def ci(self) -> tuple[float, float] | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_low, self.ci_high)
