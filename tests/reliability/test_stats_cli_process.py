"""`python -m experiments.stats` as a real process: whatever arrives on stdin, a JSON answer (exit 0)
or a JSON error with a message (exit 2), never a traceback.

The in-process properties live in tests/unit/experiments/test_cli.py (hundreds of examples); this
file runs the installed command itself, so the entry point, the stream handling and the exit
status are covered too: hostile inputs in every run, requests shaped like real ones with extreme
numbers (hypothesis, one process per example) in `make reliability-long`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]

EXTREME = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 2, 10**15, 1e-320, 1e308, -1, 0.5]),
    st.text(max_size=4),
    st.none(),
)
PROPORTION_VARIANT = st.fixed_dictionaries(
    {"name": st.sampled_from(["A", "B", "C", "A", ""]), "n": EXTREME, "conversions": EXTREME}
)
MEAN_VARIANT = st.fixed_dictionaries(
    {"name": st.sampled_from(["A", "B", "C"]), "n": EXTREME, "sum": EXTREME, "sum_squares": EXTREME}
)
REQUESTS = st.one_of(
    st.fixed_dictionaries(
        {
            "metric": st.just("proportion"),
            "variants": st.lists(PROPORTION_VARIANT, max_size=4),
        },
        optional={
            "method": st.sampled_from(["frequentist", "bayesian", "sequential", "magic"]),
            "alpha": EXTREME,
        },
    ),
    st.fixed_dictionaries(
        {"metric": st.just("mean"), "variants": st.lists(MEAN_VARIANT, max_size=4)},
        optional={"method": st.sampled_from(["frequentist", "bayesian", "sequential"])},
    ),
    st.fixed_dictionaries(
        {
            "power": st.fixed_dictionaries(
                {"metric": st.sampled_from(["proportion", "mean"])},
                optional={
                    "baseline_rate": EXTREME,
                    "mde": EXTREME,
                    "sample_size_per_variant": EXTREME,
                    "standard_deviation": EXTREME,
                },
            )
        }
    ),
)


def run_command(stdin: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.stats"], input=stdin, cwd=ROOT, capture_output=True, timeout=60
    )


def check(result: subprocess.CompletedProcess) -> dict:
    err = result.stderr.decode("utf-8")
    assert "Traceback" not in err, err
    assert result.returncode in (0, 2), (result.returncode, err)
    answer = json.loads(result.stdout)
    assert isinstance(answer, dict)
    if result.returncode == 2:
        assert set(answer) == {"error"} and answer["error"].strip()
        assert err.startswith("error: ")
    else:
        assert "error" not in answer and err == ""
    return answer


@pytest.mark.slow
@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS)
def test_shaped_requests_with_extreme_numbers(request_):
    check(run_command(json.dumps(request_).encode()))


@pytest.mark.parametrize(
    "stdin",
    [
        b"",
        b"\xff\xfe\x00",
        b"NaN",
        b'{"metric": "proportion", "variants": [{"name": "A", "n": NaN, "conversions": 1}]}',
        b"[" * 200_000,
        b'{"metric": "proportion", "variants": [{"name": "A", "n": ' + b"9" * 6000 + b"}]}",
        json.dumps(
            {"metric": "proportion", "variants": [{"name": "A", "n": 10, "conversions": 1}] * 5000}
        ).encode(),
    ],
    ids=["empty", "not-utf8", "nan", "nan-inside", "deep", "huge-int", "5000-variants"],
)
def test_hostile_input_is_an_error_not_a_crash(stdin):
    answer = check(run_command(stdin))
    assert answer  # either a result or a message


def test_a_good_request_is_answered():
    request_ = {
        "metric": "proportion",
        "variants": [
            {"name": "A", "n": 1000, "conversions": 100},
            {"name": "B", "n": 1000, "conversions": 130},
        ],
    }
    answer = check(run_command(json.dumps(request_).encode()))
    assert answer["comparisons"][0]["variant"] == "B"
