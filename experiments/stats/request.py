"""Reading the command line's JSON request into typed values, with messages that name the field.

An analyst who mistypes a key or sends conversions larger than n should learn exactly which field
is wrong and why, not receive a confident answer computed from nonsense. So unknown keys are
errors, JSON's loose number types are checked (true is not 1, 2.5 customers is not a count), and
every message starts with the path of the offending value, e.g. ``variants[1].conversions``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from experiments.stats import analysis, bayesian, sequential
from experiments.stats.cuped import PrePeriodSums, centred_moments
from experiments.stats.multiple_testing import CORRECTIONS
from experiments.stats.types import MAX_CUSTOMERS, ConversionCounts, MetricSums

MAX_NAME_LENGTH = 200
MAX_SEED = 2**63 - 1

ANALYSIS_KEYS = (
    "metric",
    "method",
    "relative",
    "alpha",
    "correction",
    "weights",
    "variants",
    "metric_label",
    "seed",
    "planned_sample_size_per_variant",
)
PRE_PERIOD_KEYS = ("pre_sum", "pre_sum_squares", "sum_products")
VARIANT_KEYS = {
    "proportion": ("name", "n", "conversions"),
    "mean": ("name", "n", "sum", "sum_squares"),
}
POWER_KEYS = (
    "metric",
    "baseline_rate",
    "baseline_mean",
    "standard_deviation",
    "mde",
    "sample_size_per_variant",
    "relative",
    "alpha",
    "power",
)


class RequestError(ValueError):
    """A request the command line refuses, with a message naming the offending field."""


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    names: tuple[str, ...]
    data: tuple[ConversionCounts | MetricSums, ...]
    metric: str
    method: str
    relative: bool
    alpha: float
    correction: str
    weights: tuple[float, ...] | None
    covariates: tuple[PrePeriodSums, ...] | None
    seed: int
    planned_sample_size: int
    metric_label: str | None


@dataclass(frozen=True, slots=True)
class PowerRequest:
    metric: str
    baseline_rate: float | None
    baseline_mean: float | None
    standard_deviation: float | None
    mde: float | None
    sample_size_per_variant: int | None
    relative: bool
    alpha: float
    power: float


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(f"{path}: must be a JSON object, got {_type_name(value)}")
    return value


def _only_keys(obj: dict[str, Any], allowed: tuple[str, ...], path: str, hint: str = "") -> None:
    unknown = [key for key in obj if key not in allowed]
    if unknown:
        listed = ", ".join(repr(key) for key in unknown)
        noun = "key" if len(unknown) == 1 else "keys"
        raise RequestError(f"{path}: unknown {noun} {listed}{hint}; allowed keys are {', '.join(allowed)}")


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"{path}: must be a number, got {_type_name(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise RequestError(f"{path}: the number is too large") from None
    if not math.isfinite(number):
        raise RequestError(f"{path}: must be a finite number")
    return number


def _whole(value: Any, path: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{path}: must be a whole number, got {_type_name(value)} {value!r}")
    if value < minimum:
        raise RequestError(f"{path}: must be at least {minimum}, got {value}")
    if value > maximum:
        raise RequestError(f"{path}: must be at most {maximum}, got {value}")
    return value


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError(f"{path}: must be true or false, got {_type_name(value)}")
    return value


def _choice(value: Any, path: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        shown = repr(value) if isinstance(value, str) else _type_name(value)
        raise RequestError(f"{path}: must be one of {', '.join(repr(o) for o in options)}, got {shown}")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{path}: must be a string, got {_type_name(value)}")
    if not value.strip():
        raise RequestError(f"{path}: must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise RequestError(f"{path}: must be at most {MAX_NAME_LENGTH} characters long")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(f"{path}: must be valid Unicode text (it contains a lone surrogate)") from None
    return value


def _alpha(obj: dict[str, Any], path: str) -> float:
    if "alpha" not in obj:
        return 0.05
    alpha = _number(obj["alpha"], f"{path}alpha")
    if not 0 < alpha <= 0.5:
        raise RequestError(f"{path}alpha: must be above 0 and at most 0.5, got {alpha!r}")
    return alpha


def parse_request(payload: Any) -> AnalysisRequest | PowerRequest:
    """Turn the decoded JSON into a typed request, or raise RequestError naming the problem."""
    request = _object(payload, "request")
    if "power" in request:
        if len(request) != 1:
            others = ", ".join(repr(key) for key in request if key != "power")
            raise RequestError(f"request: a power request has only the key 'power'; remove {others}")
        return _parse_power(_object(request["power"], "power"))
    if not request:
        raise RequestError(
            "request: empty object; send an analysis request (with 'variants') or {'power': {...}}"
        )
    _only_keys(request, ANALYSIS_KEYS, "request", " (or send {'power': {...}} alone)")
    return _parse_analysis(request)


def _parse_analysis(request: dict[str, Any]) -> AnalysisRequest:
    if "metric" not in request:
        raise RequestError("metric: missing; must be 'proportion' or 'mean'")
    metric = _choice(request["metric"], "metric", analysis.METRICS)
    method = _choice(request.get("method", "frequentist"), "method", analysis.METHODS)
    relative = _boolean(request.get("relative", False), "relative")
    alpha = _alpha(request, "")
    correction = _choice(request.get("correction", "none"), "correction", CORRECTIONS)
    if method == "bayesian" and correction != "none":
        raise RequestError(
            "correction: corrections for multiple comparisons adjust p-values, which the bayesian "
            "method does not produce; use 'none' or the frequentist or sequential method"
        )
    if "seed" in request and method != "bayesian":
        raise RequestError("seed: only the bayesian method draws random numbers; remove it")
    seed = _whole(request.get("seed", bayesian.DEFAULT_SEED), "seed", minimum=0, maximum=MAX_SEED)
    planned_key = "planned_sample_size_per_variant"
    if planned_key in request and method != "sequential":
        raise RequestError(f"{planned_key}: only the sequential method uses it; remove it")
    planned = _whole(
        request.get(planned_key, sequential.DEFAULT_PLANNED_SAMPLE_SIZE),
        planned_key,
        minimum=1,
        maximum=MAX_CUSTOMERS,
    )
    label = _text(request["metric_label"], "metric_label") if "metric_label" in request else None

    if "variants" not in request:
        raise RequestError("variants: missing; list the variants, the baseline first")
    variants = request["variants"]
    if not isinstance(variants, list):
        raise RequestError(f"variants: must be a list, got {_type_name(variants)}")
    if not analysis.MIN_VARIANTS <= len(variants) <= analysis.MAX_VARIANTS:
        raise RequestError(
            f"variants: an experiment has {analysis.MIN_VARIANTS} to {analysis.MAX_VARIANTS} "
            f"variants (the baseline first), got {len(variants)}"
        )
    parsed = [_parse_variant(item, f"variants[{i}]", metric) for i, item in enumerate(variants)]
    names = tuple(name for name, _, _ in parsed)
    for i, name in enumerate(names):
        if name in names[:i]:
            raise RequestError(f"variants[{i}].name: {name!r} is used twice; names must be unique")
    covariates = [covariate for _, _, covariate in parsed]
    with_pre_period = [i for i, covariate in enumerate(covariates) if covariate is not None]
    if with_pre_period and len(with_pre_period) != len(covariates):
        missing = next(i for i, covariate in enumerate(covariates) if covariate is None)
        raise RequestError(
            f"variants[{missing}]: pre-period totals ({', '.join(PRE_PERIOD_KEYS)}) are given for some "
            "variants but not this one; give them for every variant or for none"
        )

    weights = None
    if "weights" in request:
        raw = request["weights"]
        if not isinstance(raw, list):
            raise RequestError(f"weights: must be a list of numbers, got {_type_name(raw)}")
        if len(raw) != len(variants):
            raise RequestError(f"weights: {len(raw)} weights given for {len(variants)} variants")
        weights = tuple(_number(w, f"weights[{i}]") for i, w in enumerate(raw))
        for i, weight in enumerate(weights):
            if not weight > 0:
                raise RequestError(f"weights[{i}]: must be positive, got {weight!r}")
        if not math.isfinite(sum(weights)):
            raise RequestError("weights: the weights are too large to add up")

    return AnalysisRequest(
        names=names,
        data=tuple(data for _, data, _ in parsed),
        metric=metric,
        method=method,
        relative=relative,
        alpha=alpha,
        correction=correction,
        weights=weights,
        covariates=tuple(covariates) if with_pre_period else None,  # type: ignore[arg-type]
        seed=seed,
        planned_sample_size=planned,
        metric_label=label,
    )


def _parse_variant(
    value: Any, path: str, metric: str
) -> tuple[str, ConversionCounts | MetricSums, PrePeriodSums | None]:
    variant = _object(value, path)
    allowed = VARIANT_KEYS[metric] + PRE_PERIOD_KEYS
    other_metric = "mean" if metric == "proportion" else "proportion"
    misplaced = [key for key in variant if key in VARIANT_KEYS[other_metric] and key not in allowed]
    if misplaced:
        raise RequestError(
            f"{path}: {misplaced[0]!r} belongs to the {other_metric} metric; a {metric} variant has "
            f"{', '.join(VARIANT_KEYS[metric])}"
        )
    _only_keys(variant, allowed, path)
    for key in VARIANT_KEYS[metric]:
        if key not in variant:
            raise RequestError(f"{path}.{key}: missing")
    name = _text(variant["name"], f"{path}.name")
    minimum_n = 1 if metric == "proportion" else 2
    n = _whole(variant["n"], f"{path}.n", minimum=minimum_n, maximum=MAX_CUSTOMERS)
    data: ConversionCounts | MetricSums
    if metric == "proportion":
        conversions = _whole(variant["conversions"], f"{path}.conversions", minimum=0, maximum=MAX_CUSTOMERS)
        if conversions > n:
            raise RequestError(f"{path}.conversions: must not exceed n ({n}), got {conversions}")
        data = ConversionCounts(n=n, conversions=conversions)
    else:
        total = _number(variant["sum"], f"{path}.sum")
        squares = _number(variant["sum_squares"], f"{path}.sum_squares")
        if squares < 0:
            raise RequestError(f"{path}.sum_squares: must not be negative, got {squares!r}")
        try:
            data = MetricSums(n=n, sum=total, sum_squares=squares)
        except ValueError as error:
            raise RequestError(f"{path}.sum_squares: {error}") from None

    covariate = None
    present = [key for key in PRE_PERIOD_KEYS if key in variant]
    if present:
        absent = [key for key in PRE_PERIOD_KEYS if key not in variant]
        if absent:
            raise RequestError(f"{path}.{absent[0]}: missing (CUPED needs {', '.join(PRE_PERIOD_KEYS)})")
        values = {key: _number(variant[key], f"{path}.{key}") for key in PRE_PERIOD_KEYS}
        try:
            covariate = PrePeriodSums(**values)
            # Checked here, against this variant's own totals, so the message can name the variant.
            centred_moments(data.as_sums() if isinstance(data, ConversionCounts) else data, covariate)
        except ValueError as error:
            raise RequestError(f"{path}: {error}") from None
    return name, data, covariate


def _parse_power(power: dict[str, Any]) -> PowerRequest:
    _only_keys(power, POWER_KEYS, "power")
    metric = _choice(power.get("metric", "proportion"), "power.metric", analysis.METRICS)
    relative = _boolean(power.get("relative", False), "power.relative")
    alpha = _alpha(power, "power.")
    target_power = _number(power.get("power", 0.8), "power.power")
    if not 0.5 <= target_power < 1:
        raise RequestError(f"power.power: must be at least 0.5 and below 1, got {target_power!r}")

    has_mde, has_size = "mde" in power, "sample_size_per_variant" in power
    if has_mde == has_size:
        raise RequestError(
            "power: give exactly one of 'mde' (to get the sample size) or 'sample_size_per_variant' "
            "(to get the minimum detectable effect)"
        )
    mde = None
    if has_mde:
        mde = _number(power["mde"], "power.mde")
        if not mde > 0:
            raise RequestError(f"power.mde: must be positive, got {mde!r}")
    size = None
    if has_size:
        size = _whole(
            power["sample_size_per_variant"],
            "power.sample_size_per_variant",
            minimum=2,
            maximum=MAX_CUSTOMERS,
        )

    baseline_rate = baseline_mean = deviation = None
    if metric == "proportion":
        for key in ("baseline_mean", "standard_deviation"):
            if key in power:
                raise RequestError(
                    f"power.{key}: belongs to the mean metric; a proportion uses baseline_rate"
                )
        if "baseline_rate" not in power:
            raise RequestError("power.baseline_rate: missing")
        baseline_rate = _number(power["baseline_rate"], "power.baseline_rate")
        if not 0 < baseline_rate < 1:
            raise RequestError(
                f"power.baseline_rate: must be between 0 and 1 (exclusive), got {baseline_rate!r}"
            )
        if mde is not None:
            target = baseline_rate * (1 + mde) if relative else baseline_rate + mde
            if not target < 1:
                raise RequestError(
                    f"power.mde: the baseline rate moved by mde ({target!r}) must stay below 1"
                )
    else:
        if "baseline_rate" in power:
            raise RequestError(
                "power.baseline_rate: belongs to the proportion metric; a mean uses baseline_mean and standard_deviation"
            )
        if "standard_deviation" not in power:
            raise RequestError("power.standard_deviation: missing")
        deviation = _number(power["standard_deviation"], "power.standard_deviation")
        if not deviation > 0:
            raise RequestError(f"power.standard_deviation: must be positive, got {deviation!r}")
        if "baseline_mean" in power:
            baseline_mean = _number(power["baseline_mean"], "power.baseline_mean")
        if relative and not baseline_mean:
            raise RequestError(
                "power.baseline_mean: a relative mde for a mean needs a non-zero baseline_mean"
            )
    return PowerRequest(
        metric=metric,
        baseline_rate=baseline_rate,
        baseline_mean=baseline_mean,
        standard_deviation=deviation,
        mde=mde,
        sample_size_per_variant=size,
        relative=relative,
        alpha=alpha,
        power=target_power,
    )
