"""``python -m experiments.stats``: one JSON request on stdin, one JSON response on stdout.

Exit status 0 with the result, or 2 for a request that cannot be answered. A refused request
writes ``error: <message>`` on stderr and also a JSON object ``{"error": "<message>"}`` on stdout,
so that a script which always parses stdout gets valid JSON either way. See docs/statistics.md for
the request and response formats.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from experiments.stats import power as power_calc
from experiments.stats.analysis import ExperimentAnalysis, analyze_experiment
from experiments.stats.request import AnalysisRequest, PowerRequest, RequestError, parse_request

EXIT_OK = 0
EXIT_BAD_REQUEST = 2


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: a value that overflowed is reported as unknown (null)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _analysis_response(result: ExperimentAnalysis) -> dict[str, Any]:
    comparisons = []
    for row in result.comparisons:
        c = row.comparison
        ci = None
        if c.ci_low is not None and c.ci_high is not None:
            low, high = _finite(c.ci_low), _finite(c.ci_high)
            ci = [low, high] if low is not None and high is not None else None
        comparisons.append(
            {
                "variant": row.variant,
                "baseline": row.baseline,
                "effect": _finite(c.effect),
                "ci": ci,
                "ci_level": _finite(c.confidence_level) if ci is not None else None,
                "p_value": _finite(c.p_value),
                "chance_to_win": _finite(c.chance_to_win),
                "expected_loss": _finite(c.expected_loss),
                "verdict": row.verdict,
            }
        )
    response: dict[str, Any] = {
        "srm_p_value": _finite(result.sample_ratio.p_value),
        "srm_warning": result.srm_warning,
        "comparisons": comparisons,
    }
    if result.cuped is not None:
        response["cuped"] = {
            "theta": _finite(result.cuped.theta),
            "variance_reduction": _finite(result.cuped.variance_reduction),
        }
    return response


def _power_response(request: PowerRequest) -> dict[str, Any]:
    common = {"relative": request.relative, "alpha": request.alpha, "power": request.power}
    if request.metric == "proportion":
        assert request.baseline_rate is not None
        if request.mde is not None:
            size = power_calc.sample_size_for_proportions(request.baseline_rate, request.mde, **common)
            return {"sample_size_per_variant": math.ceil(size)}
        assert request.sample_size_per_variant is not None
        mde = power_calc.mde_for_proportions(request.baseline_rate, request.sample_size_per_variant, **common)
        return {"mde": mde, "relative": request.relative}
    assert request.standard_deviation is not None
    if request.mde is not None:
        size = power_calc.sample_size_for_means(
            request.mde, request.standard_deviation, baseline_mean=request.baseline_mean, **common
        )
        return {"sample_size_per_variant": math.ceil(size)}
    assert request.sample_size_per_variant is not None
    mde = power_calc.mde_for_means(
        request.standard_deviation,
        request.sample_size_per_variant,
        baseline_mean=request.baseline_mean,
        **common,
    )
    return {"mde": mde, "relative": request.relative}


def _answer(request: AnalysisRequest | PowerRequest) -> dict[str, Any]:
    if isinstance(request, PowerRequest):
        return _power_response(request)
    result = analyze_experiment(
        request.names,
        request.data,
        metric=request.metric,  # type: ignore[arg-type]
        method=request.method,  # type: ignore[arg-type]
        relative=request.relative,
        alpha=request.alpha,
        correction=request.correction,  # type: ignore[arg-type]
        weights=request.weights,
        covariates=request.covariates,
        seed=request.seed,
        planned_sample_size=request.planned_sample_size,
        metric_label=request.metric_label,
    )
    return _analysis_response(result)


def _refuse(message: str) -> tuple[int, str, str]:
    return EXIT_BAD_REQUEST, json.dumps({"error": message}, ensure_ascii=False) + "\n", f"error: {message}\n"


def run(raw: bytes) -> tuple[int, str, str]:
    """Answer one request: (exit status, stdout text, stderr text). Kept free of I/O for tests."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return _refuse(f"request: not UTF-8 text ({error.reason} at byte {error.start})")
    if not text.strip():
        return _refuse("request: empty; send one JSON object on stdin")
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        return _refuse("request: JSON nested too deeply")
    except ValueError as error:
        return _refuse(f"request: not valid JSON ({error})")
    try:
        response = _answer(parse_request(payload))
    except RequestError as error:
        return _refuse(str(error))
    except ValueError as error:
        # The calculators refuse some valid-looking requests, e.g. an effect too small to detect.
        return _refuse(f"request: {error}")
    return EXIT_OK, json.dumps(response, ensure_ascii=False, allow_nan=False) + "\n", ""


def main() -> int:
    status, out, err = run(sys.stdin.buffer.read())
    if out:
        sys.stdout.buffer.write(out.encode("utf-8"))
        sys.stdout.flush()
    if err:
        sys.stderr.buffer.write(err.encode("utf-8"))
        sys.stderr.flush()
    return status
