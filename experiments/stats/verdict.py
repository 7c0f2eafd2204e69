"""Sentences a marketer can read without a statistics course, built from the numbers alone.

The wording follows the decision the numbers support and nothing more: a frequentist or sequential
result is called a rise or a fall only when its interval excludes zero (which, by construction,
is when its possibly corrected p-value is below alpha); a Bayesian one is called probably better
only when its chance to win reaches 1 - alpha/2 (97.5 % for a 95 % analysis), which is where its
two-sided credible interval stops including zero. Everything else is "no clear difference", with the
interval shown so that the reader sees how large an effect is still plausible. Numbers are rounded
to the precision the interval's width supports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from experiments.stats.srm import SampleRatioCheck
from experiments.stats.types import Comparison

DEFAULT_LABELS = {"proportion": "conversion rate", "mean": "average value per customer"}


def display_name(name: str) -> str:
    """'B' reads as 'Variant B'; names that already say what they are stay as they are."""
    lowered = name.lower()
    if " " in name or lowered.startswith(("variant", "control", "baseline", "holdout")):
        return name
    return f"Variant {name}"


def _decimals(width: float) -> int:
    if not math.isfinite(width) or width <= 0:
        return 2
    return max(0, min(6, 1 - math.floor(math.log10(width))))


def _number(value: float, decimals: int, *, signed: bool = False) -> str:
    text = f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
    # "-0" after rounding reads as a fall that is not there.
    if float(text) == 0:
        text = f"{0:.{decimals}f}"
    return text


def _level(confidence_level: float) -> str:
    percent = round(confidence_level * 100, 1)
    return f"{percent:g} %"


class _Units:
    """How one kind of effect is written: 12 %, 1.2 percentage points, or 0.35."""

    def __init__(self, *, metric: str, relative: bool, width: float) -> None:
        self.scale = 100.0 if relative or metric == "proportion" else 1.0
        self.relative = relative
        self.metric = metric
        self.decimals = _decimals(width * self.scale)

    def amount(self, value: float, *, signed: bool = False) -> str:
        number = _number(value * self.scale, self.decimals, signed=signed)
        if self.relative:
            return f"{number} %"
        if self.metric == "proportion":
            return f"{number} percentage points"
        return number

    def rough_amount(self, value: float) -> str:
        """Two significant digits, for small quantities such as an expected loss."""
        scaled = value * self.scale
        decimals = 0 if scaled == 0 else max(0, min(8, 1 - math.floor(math.log10(abs(scaled)))))
        number = _number(scaled, decimals)
        if self.relative:
            return f"{number} %"
        if self.metric == "proportion":
            return f"{number} percentage points"
        return number

    def bound(self, value: float) -> str:
        number = _number(value * self.scale, self.decimals)
        return f"{number} %" if self.relative else number

    def interval(self, comparison: Comparison, kind: str) -> str:
        assert comparison.ci_low is not None and comparison.ci_high is not None
        assert comparison.confidence_level is not None
        return (
            f"{_level(comparison.confidence_level)} {kind} {self.bound(comparison.ci_low)} "
            f"to {self.bound(comparison.ci_high)}"
        )


def _chance(probability: float) -> str:
    if probability > 0.999:
        return "more than 99.9 %"
    if probability < 0.001:
        return "less than 0.1 %"
    if probability >= 0.99 or probability < 0.01:
        return f"{probability * 100:.1f} %"
    return f"{probability * 100:.0f} %"


def describe_comparison(
    comparison: Comparison,
    *,
    variant: str,
    baseline: str,
    metric: str,
    method: str,
    relative: bool,
    metric_label: str | None = None,
) -> str:
    """One sentence on what this comparison shows (see the module docstring for the rules)."""
    label = metric_label or DEFAULT_LABELS.get(metric, "the metric")
    who, against = display_name(variant), display_name(baseline)
    if comparison.effect is None or comparison.ci_low is None or comparison.ci_high is None:
        reason = comparison.note or "there is not enough data to compare them yet."
        return f"{who} compared with {against} on {label}: {reason}"
    width = comparison.ci_high - comparison.ci_low
    units = _Units(metric=metric, relative=relative, width=width)
    if method == "bayesian":
        return _describe_bayesian(comparison, who=who, against=against, label=label, units=units)
    kind = "always-valid CI" if method == "sequential" else "CI"
    interval = units.interval(comparison, kind)
    if comparison.ci_low > 0:
        return f"{who} raised {label} by {units.amount(comparison.effect)} ({interval})."
    if comparison.ci_high < 0:
        return f"{who} lowered {label} by {units.amount(-comparison.effect)} ({interval})."
    return (
        f"No clear difference in {label} between {who} and {against}: the change was "
        f"{units.amount(comparison.effect, signed=True)} ({interval}), which is consistent with no effect."
    )


def _describe_bayesian(comparison: Comparison, *, who: str, against: str, label: str, units: _Units) -> str:
    assert comparison.chance_to_win is not None and comparison.confidence_level is not None
    assert comparison.effect is not None
    chance = comparison.chance_to_win
    interval = units.interval(comparison, "credible interval")
    estimate = f"best estimate {units.amount(comparison.effect, signed=True)} ({interval})"
    risk = ""
    if comparison.expected_loss is not None:
        risk = f"; expected loss if {who} is chosen: {units.rough_amount(comparison.expected_loss)}"
    # 1 - alpha/2, where the two-sided credible interval stops including zero, so that the sentence
    # and the interval printed beside it do not contradict each other.
    threshold = 1 - (1 - comparison.confidence_level) / 2
    if chance >= threshold:
        opening = f"{who} is probably better than {against} on {label}"
    elif chance <= 1 - threshold:
        opening = f"{who} is probably worse than {against} on {label}"
    else:
        opening = f"No clear winner between {who} and {against} on {label} yet"
    return f"{opening}: {_chance(chance)} chance to beat {against}, {estimate}{risk}."


def sample_ratio_warning(check: SampleRatioCheck, names: Sequence[str]) -> str | None:
    """A loud warning when the split of customers does not match the configured weights, else None."""
    if not check.mismatch:
        return None
    total = sum(check.observed)
    expected_total = sum(check.expected)
    observed = " / ".join(
        f"{display_name(name)} {count / total * 100:.1f} %"
        for name, count in zip(names, check.observed, strict=True)
    )
    configured = " / ".join(f"{share / expected_total * 100:.1f} %" for share in check.expected)
    return (
        "WARNING - SAMPLE RATIO MISMATCH: customers were split "
        f"{observed}, but the configured weights were {configured} "
        f"(chi-square p = {check.p_value:.2g}). Customers were lost or added unevenly somewhere "
        "(assignment, redirects, bot filtering or tracking), so the comparisons of this experiment "
        "cannot be trusted until the cause is found and fixed."
    )
