"""`python -m experiments.stats`: answers, precise refusals, and no input that crashes it."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.stats.cli import run

REPOSITORY = Path(__file__).resolve().parents[3]
TWO_VARIANTS = [
    {"name": "A", "n": 10_000, "conversions": 500},
    {"name": "B", "n": 10_000, "conversions": 590},
]
COMPARISON_KEYS = {
    "variant",
    "baseline",
    "effect",
    "ci",
    "ci_level",
    "p_value",
    "chance_to_win",
    "expected_loss",
    "verdict",
}


def ask(request) -> tuple[int, dict, str]:
    status, out, err = run(json.dumps(request).encode())
    return status, json.loads(out), err


def refusal(request) -> str:
    raw = request if isinstance(request, bytes) else json.dumps(request).encode()
    status, out, err = run(raw)
    assert status == 2
    assert err.startswith("error: ") and err.endswith("\n")
    message = json.loads(out)["error"]
    assert err == f"error: {message}\n"
    return message


def test_the_module_runs_as_a_command():
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    request = json.dumps({"metric": "proportion", "variants": TWO_VARIANTS})
    done = subprocess.run(
        [sys.executable, "-m", "experiments.stats"],
        input=request.encode(),
        capture_output=True,
        env=environment,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert json.loads(done.stdout)["comparisons"][0]["variant"] == "B"
    refused = subprocess.run(
        [sys.executable, "-m", "experiments.stats"],
        input=b"{not json",
        capture_output=True,
        env=environment,
        timeout=120,
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith(b"error: request: not valid JSON")
    assert "error" in json.loads(refused.stdout)


def test_frequentist_response_has_the_documented_shape():
    status, response, err = ask({"metric": "proportion", "variants": TWO_VARIANTS})
    assert status == 0 and err == ""
    assert set(response) == {"srm_p_value", "srm_warning", "comparisons"}
    assert response["srm_p_value"] == pytest.approx(1.0)
    (row,) = response["comparisons"]
    assert set(row) == COMPARISON_KEYS
    assert row["variant"] == "B" and row["baseline"] == "A"
    assert row["effect"] == pytest.approx(0.009)
    assert row["ci"][0] < row["effect"] < row["ci"][1]
    assert 0 < row["p_value"] < 0.05
    assert row["chance_to_win"] is None and row["expected_loss"] is None


def test_bayesian_and_sequential_fill_their_own_fields():
    _, bayes, _ = ask({"metric": "proportion", "method": "bayesian", "variants": TWO_VARIANTS, "seed": 3})
    row = bayes["comparisons"][0]
    assert row["p_value"] is None and row["chance_to_win"] > 0.99 and row["expected_loss"] >= 0
    _, seq, _ = ask({"metric": "proportion", "method": "sequential", "variants": TWO_VARIANTS})
    row = seq["comparisons"][0]
    assert row["chance_to_win"] is None and row["expected_loss"] is None and 0 < row["p_value"] <= 1


def test_means_with_cuped_and_a_correction():
    variants = [
        {"name": "A", "n": 1000, "sum": 5000.0, "sum_squares": 45000.0, "pre_sum": 4000.0, "pre_sum_squares": 30000.0, "sum_products": 32000.0},
        {"name": "B", "n": 1000, "sum": 5400.0, "sum_squares": 50000.0, "pre_sum": 4100.0, "pre_sum_squares": 31000.0, "sum_products": 34000.0},
        {"name": "C", "n": 1000, "sum": 5100.0, "sum_squares": 46000.0, "pre_sum": 3900.0, "pre_sum_squares": 29000.0, "sum_products": 31500.0},
    ]  # fmt: skip
    status, response, _ = ask({"metric": "mean", "relative": True, "correction": "bh", "variants": variants})
    assert status == 0
    assert response["cuped"]["variance_reduction"] > 0
    assert [row["variant"] for row in response["comparisons"]] == ["B", "C"]
    assert all(row["ci_level"] >= 0.95 for row in response["comparisons"])


def test_power_request_matches_r():
    """R: power.prop.test(p1 = .50, p2 = .75, power = .90) gives n = 76.7, i.e. 77 per group."""
    status, response, _ = ask({"power": {"baseline_rate": 0.5, "mde": 0.25, "alpha": 0.05, "power": 0.9}})
    assert (status, response) == (0, {"sample_size_per_variant": 77})
    _, relative, _ = ask({"power": {"baseline_rate": 0.5, "mde": 0.5, "relative": True, "power": 0.9}})
    assert relative == {"sample_size_per_variant": 77}
    _, means, _ = ask({"power": {"metric": "mean", "standard_deviation": 1, "mde": 1, "power": 0.9}})
    assert means == {"sample_size_per_variant": 23}  # R power.t.test: n = 22.02110
    _, mde, _ = ask({"power": {"baseline_rate": 0.5, "sample_size_per_variant": 50, "power": 0.9}})
    assert mde["mde"] == pytest.approx(0.3026, abs=5e-5) and mde["relative"] is False


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ([], "request: must be a JSON object, got a list"),
        ({}, "request: empty object"),
        ({"metric": "proportion", "variants": TWO_VARIANTS, "alpah": 0.1}, "request: unknown key 'alpah'"),
        ({"variants": TWO_VARIANTS}, "metric: missing"),
        ({"metric": "ratio", "variants": TWO_VARIANTS}, "metric: must be one of 'proportion', 'mean', got 'ratio'"),
        ({"metric": "proportion"}, "variants: missing"),
        ({"metric": "proportion", "variants": TWO_VARIANTS[:1]}, "variants: an experiment has 2 to 8 variants"),
        ({"metric": "proportion", "variants": TWO_VARIANTS * 5}, "got 10"),
        ({"metric": "proportion", "variants": [TWO_VARIANTS[0], {"name": "B", "n": 100, "conversions": 101}]},
         "variants[1].conversions: must not exceed n (100), got 101"),
        ({"metric": "proportion", "variants": [TWO_VARIANTS[0], {"name": "B", "n": 0, "conversions": 0}]},
         "variants[1].n: must be at least 1, got 0"),
        ({"metric": "proportion", "variants": [TWO_VARIANTS[0], {"name": "B", "n": 10.5, "conversions": 1}]},
         "variants[1].n: must be a whole number"),
        ({"metric": "proportion", "variants": [TWO_VARIANTS[0], {"name": "B", "n": True, "conversions": 1}]},
         "variants[1].n: must be a whole number, got a boolean"),
        ({"metric": "proportion", "variants": [TWO_VARIANTS[0], {"name": "B", "n": 10}]}, "variants[1].conversions: missing"),
        ({"metric": "proportion", "variants": [TWO_VARIANTS[0], {"name": "A", "n": 10, "conversions": 1}]},
         "variants[1].name: 'A' is used twice"),
        ({"metric": "proportion", "variants": [TWO_VARIANTS[0], {"name": "", "n": 10, "conversions": 1}]},
         "variants[1].name: must not be empty"),
        ({"metric": "proportion", "variants": [TWO_VARIANTS[0], {"name": "B", "n": 10, "conversions": 1, "colour": 1}]},
         "variants[1]: unknown key 'colour'"),
        ({"metric": "proportion", "variants": [TWO_VARIANTS[0], {"name": "B", "n": 10, "sum": 1, "sum_squares": 1}]},
         "variants[1]: 'sum' belongs to the mean metric"),
        ({"metric": "mean", "variants": [{"name": "A", "n": 10, "sum": 10, "sum_squares": 5}, {"name": "B", "n": 10, "sum": 1, "sum_squares": 1}]},
         "variants[0].sum_squares: sum_squares (5.0) is smaller than sum squared over n (10.0)"),
        ({"metric": "mean", "variants": [{"name": "A", "n": 1, "sum": 1, "sum_squares": 1}, {"name": "B", "n": 10, "sum": 1, "sum_squares": 1}]},
         "variants[0].n: must be at least 2, got 1"),
        ({"metric": "mean", "variants": [{"name": "A", "n": 5, "sum": "7", "sum_squares": 20}, {"name": "B", "n": 10, "sum": 1, "sum_squares": 1}]},
         "variants[0].sum: must be a number, got a string"),
        ({"metric": "proportion", "variants": TWO_VARIANTS, "alpha": 0}, "alpha: must be above 0 and at most 0.5, got 0.0"),
        ({"metric": "proportion", "variants": TWO_VARIANTS, "alpha": "0.05"}, "alpha: must be a number, got a string"),
        ({"metric": "proportion", "variants": TWO_VARIANTS, "relative": "yes"}, "relative: must be true or false, got a string"),
        ({"metric": "proportion", "variants": TWO_VARIANTS, "correction": "bonferroni"}, "correction: must be one of 'none', 'holm', 'bh'"),
        ({"metric": "proportion", "variants": TWO_VARIANTS, "weights": [1]}, "weights: 1 weights given for 2 variants"),
        ({"metric": "proportion", "variants": TWO_VARIANTS, "weights": [1, -1]}, "weights[1]: must be positive, got -1.0"),
        ({"metric": "proportion", "variants": TWO_VARIANTS, "weights": [1, None]}, "weights[1]: must be a number, got null"),
        ({"metric": "proportion", "variants": TWO_VARIANTS, "method": "bayesian", "correction": "holm"}, "correction: corrections"),
        ({"metric": "proportion", "variants": TWO_VARIANTS, "seed": 1}, "seed: only the bayesian method"),
        ({"metric": "proportion", "variants": TWO_VARIANTS, "planned_sample_size_per_variant": 9}, "only the sequential method"),
        ({"metric": "proportion", "variants": [{**TWO_VARIANTS[0], "pre_sum": 1, "pre_sum_squares": 1, "sum_products": 1}, TWO_VARIANTS[1]]},
         "variants[1]: pre-period totals"),
        ({"metric": "proportion", "variants": [{**TWO_VARIANTS[0], "pre_sum": 1}, TWO_VARIANTS[1]]}, "variants[0].pre_sum_squares: missing"),
        ({"power": {"baseline_rate": 0.5, "mde": 0.1}, "metric": "mean"}, "a power request has only the key 'power'"),
        ({"power": []}, "power: must be a JSON object, got a list"),
        ({"power": {"baseline_rate": 0.5}}, "give exactly one of 'mde'"),
        ({"power": {"baseline_rate": 1.5, "mde": 0.1}}, "power.baseline_rate: must be between 0 and 1"),
        ({"power": {"baseline_rate": 0.9, "mde": 0.2}}, "power.mde: the baseline rate moved by mde"),
        ({"power": {"baseline_rate": 0.5, "mde": 0.1, "power": 1}}, "power.power: must be at least 0.5 and below 1"),
        ({"power": {"baseline_rate": 0.5, "mde": 1e-13}}, "too small to detect"),
        ({"power": {"metric": "mean", "mde": 1}}, "power.standard_deviation: missing"),
        ({"power": {"metric": "mean", "mde": 0.1, "standard_deviation": 1, "relative": True}}, "needs a non-zero baseline_mean"),
        ({"power": {"baseline_rate": 0.5, "mde": 0.1, "effect": 1}}, "power: unknown key 'effect'"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_precise_message(request_, message):
    assert message in refusal(request_)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "request: empty"),
        (b"   \n", "request: empty"),
        (b"\xff\xfe{}", "request: not UTF-8 text"),
        (b'{"metric": NaN}', "request: not valid JSON (NaN is not a number JSON allows"),
        (b'{"a": 1} {"b": 2}', "request: not valid JSON (Extra data"),
        (b"[" * 100_000 + b"]" * 100_000, "request: JSON nested too deeply"),
        (
            b'{"metric": "proportion", "weights": [1e400, 1], "variants": '
            + json.dumps(TWO_VARIANTS).encode()
            + b"}",
            "weights[0]: must be a finite number",
        ),
        (
            b'{"power": {"baseline_rate": 0.5, "sample_size_per_variant": ' + b"9" * 5000 + b"}}",
            "not valid JSON",
        ),
    ],
)
def test_unreadable_input_gets_a_precise_message(raw, message):
    assert message in refusal(raw)


def test_a_byte_order_mark_is_tolerated():
    status, _, _ = run(
        b"\xef\xbb\xbf" + json.dumps({"metric": "proportion", "variants": TWO_VARIANTS}).encode()
    )
    assert status == 0


def check_outcome(status: int, out: str, err: str) -> dict:
    """Every answer is exit 0 with a JSON result, or exit 2 with a message and a JSON error."""
    assert status in (0, 2)
    payload = json.loads(out)
    if status == 2:
        assert err.startswith("error: ") and len(err) > len("error: \n")
        assert set(payload) == {"error"}
    else:
        assert err == ""
    return payload


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES)
def test_no_json_value_crashes_the_command(value):
    check_outcome(*run(json.dumps(value).encode()))


@settings(max_examples=150, derandomize=True, deadline=None)
@given(st.binary(max_size=200))
def test_no_byte_string_crashes_the_command(raw):
    check_outcome(*run(raw))


ANYTHING = (
    st.none() | st.booleans() | st.integers(-5, 10**13) | st.floats(allow_nan=False) | st.text(max_size=5)
)
COUNTS = st.integers(0, 10**12) | st.floats(0, 1e13, allow_nan=False) | ANYTHING
NUMBERS = st.floats(-1e12, 1e15, allow_nan=False) | st.integers(-(10**15), 10**15) | ANYTHING

ROUGH_VARIANT = st.fixed_dictionaries(
    {"name": st.text(max_size=4) | ANYTHING, "n": COUNTS},
    optional={
        "conversions": COUNTS,
        "sum": NUMBERS,
        "sum_squares": NUMBERS,
        "pre_sum": NUMBERS,
        "pre_sum_squares": NUMBERS,
        "sum_products": NUMBERS,
        "extra": ANYTHING,
    },
)
ROUGH_REQUEST = st.fixed_dictionaries(
    {
        "metric": st.sampled_from(["proportion", "mean", "other"]) | ANYTHING,
        "variants": st.lists(ROUGH_VARIANT, max_size=9) | ANYTHING,
    },
    optional={
        "method": st.sampled_from(["frequentist", "bayesian", "sequential", "magic"]),
        "relative": st.booleans() | ANYTHING,
        "alpha": st.floats(-1, 1, allow_nan=False) | ANYTHING,
        "correction": st.sampled_from(["none", "holm", "bh", "x"]),
        "weights": st.lists(NUMBERS, max_size=9) | ANYTHING,
        "seed": st.integers(-1, 2**64) | ANYTHING,
        "planned_sample_size_per_variant": COUNTS,
        "metric_label": st.text(max_size=10) | ANYTHING,
    },
)
ROUGH_POWER = st.fixed_dictionaries(
    {},
    optional={
        "metric": st.sampled_from(["proportion", "mean"]) | ANYTHING,
        "baseline_rate": st.floats(-0.5, 1.5, allow_nan=False) | ANYTHING,
        "baseline_mean": NUMBERS,
        "standard_deviation": NUMBERS,
        "mde": st.floats(-1, 3, allow_nan=False) | ANYTHING,
        "sample_size_per_variant": COUNTS,
        "relative": st.booleans() | ANYTHING,
        "alpha": st.floats(0, 1, allow_nan=False) | ANYTHING,
        "power": st.floats(0, 1, allow_nan=False) | ANYTHING,
    },
).map(lambda body: {"power": body})


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROUGH_REQUEST | ROUGH_POWER)
def test_no_near_miss_request_crashes_the_command(request_):
    check_outcome(*run(json.dumps(request_).encode()))


@st.composite
def valid_requests(draw):
    """Requests that are valid by construction: every one of them must be answered."""
    metric = draw(st.sampled_from(["proportion", "mean"]))
    method = draw(st.sampled_from(["frequentist", "bayesian", "sequential"]))
    size = draw(st.integers(2, 8))
    cuped = draw(st.booleans())
    variants = []
    for index in range(size):
        n = draw(st.integers(2, 10**9))
        variant = {"name": f"V{index}", "n": n}
        if metric == "proportion":
            conversions = draw(st.integers(0, n))
            variant["conversions"] = conversions
            total, squares = float(conversions), float(conversions)
        else:
            mean = draw(st.floats(-1e4, 1e4, allow_nan=False))
            spread = draw(st.floats(0, 1e4, allow_nan=False))
            total = mean * n
            squares = n * mean * mean + (n - 1) * spread * spread
            variant.update(sum=total, sum_squares=squares)
        if cuped:
            pre_mean = draw(st.floats(-100, 100, allow_nan=False))
            pre_spread = draw(st.floats(0, 100, allow_nan=False))
            correlation = draw(st.floats(-0.99, 0.99, allow_nan=False))
            y_spread = math.sqrt(max(squares - total * total / n, 0.0))
            x_spread = pre_spread * math.sqrt(n - 1)
            variant.update(
                pre_sum=pre_mean * n,
                pre_sum_squares=n * pre_mean * pre_mean + x_spread * x_spread,
                sum_products=pre_mean * total + correlation * x_spread * y_spread,
            )
        variants.append(variant)
    request = {"metric": metric, "method": method, "variants": variants, "relative": draw(st.booleans())}
    if method != "bayesian":
        request["correction"] = draw(st.sampled_from(["none", "holm", "bh"]))
    if draw(st.booleans()):
        request["weights"] = draw(st.lists(st.floats(0.01, 100), min_size=size, max_size=size))
    request["alpha"] = draw(st.sampled_from([0.01, 0.05, 0.1, 0.2]))
    return request


@settings(max_examples=120, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_requests())
def test_valid_requests_are_always_answered_sensibly(request_):
    status, out, err = run(json.dumps(request_).encode())
    assert status == 0, err
    response = check_outcome(status, out, err)
    assert len(response["comparisons"]) == len(request_["variants"]) - 1
    assert 0 <= response["srm_p_value"] <= 1
    for row in response["comparisons"]:
        assert row["verdict"]
        if row["ci"] is not None:
            assert row["ci"][0] <= row["ci"][1]
            assert 0.5 <= row["ci_level"] < 1
        if row["p_value"] is not None:
            assert 0 <= row["p_value"] <= 1
        if row["chance_to_win"] is not None:
            assert 0 <= row["chance_to_win"] <= 1 and row["expected_loss"] >= 0
