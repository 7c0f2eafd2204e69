"""Render time and size limits hold, and a breach is a template error with a reason."""

from __future__ import annotations

import time

import pytest

from campaigns.rendering import RenderLimits, TemplateError, render_parts
from campaigns.rendering.limits import printed_size
from tests.unit.rendering.sample_context import sample_context

NESTED_LOOP = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"


def _error(parts: dict[str, str], limits: RenderLimits | None = None) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        render_parts(parts, sample_context(), limits=limits or RenderLimits())
    return caught.value


@pytest.mark.parametrize("part", ["html", "subject", "push_body"])
def test_a_tight_nested_loop_is_stopped_near_the_limit(part: str) -> None:
    limit = 0.2
    started = time.monotonic()
    error = _error({part: NESTED_LOOP}, RenderLimits(time_limit=limit))
    elapsed = time.monotonic() - started
    assert error.reason == "time_limit"
    assert error.line == 1
    assert "longer than 0.2 s" in error.message
    assert elapsed < limit + 0.5, elapsed  # 10^8 iterations would take a minute


def test_the_deadline_covers_every_part_of_a_message() -> None:
    error = _error(
        {
            "subject": "{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}",
            "html": "x",
        },
        RenderLimits(time_limit=0.05),
    )
    assert [p.field for p in error.problems] == ["subject"]  # html had no time left: not blamed


def test_a_loop_inside_a_macro_and_a_recursive_loop_are_stopped() -> None:
    macro = "{% macro m() %}" + NESTED_LOOP + "{% endmacro %}{{ m() }}"
    assert _error({"html": macro}, RenderLimits(time_limit=0.1)).reason == "time_limit"
    recursive = "{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}"
    assert _error({"html": recursive}).reason == "recursion"


def test_huge_output_is_stopped() -> None:
    limits = RenderLimits(output_limits={"html": 10_000})
    error = _error({"html": "{% for i in range(1000) %}0123456789abcdef{% endfor %}"}, limits)
    assert error.reason == "output_limit"
    assert "html part is longer than 10,000 characters" in error.message


def test_output_built_in_a_macro_counts_before_it_is_returned() -> None:
    limits = RenderLimits(max_produced_chars=100_000)
    template = (
        "{% macro m() %}{% for i in range(10000) %}{{ 'x' * 100 }}{% endfor %}{% endmacro %}{{ m()|length }}"
    )
    assert _error({"html": template}, limits).reason == "output_limit"


def test_a_value_is_checked_before_it_is_built() -> None:
    started = time.monotonic()
    error = _error({"subject": "{{ 'a' * 10**9 }}"})
    assert error.reason == "value_limit"
    assert "1,000,000,000 characters" in error.message
    assert time.monotonic() - started < 1.0  # nothing of a gigabyte was allocated


def test_items_materialised_in_total_are_capped() -> None:
    template = "{% for i in range(100) %}{% set x = range(10000)|list %}{% endfor %}"
    error = _error({"html": template}, RenderLimits(max_produced_items=100_000))
    assert error.reason == "value_limit"
    assert "list items in total" in error.message


def test_templates_over_the_source_limit_are_refused() -> None:
    error = _error({"html": "x" * 2_000}, RenderLimits(max_source_chars=1_000))
    assert error.reason == "invalid"


def test_within_limits_renders_normally() -> None:
    parts = render_parts(
        {"subject": "{% for i in range(100) %}{{ i }}{% endfor %}"},
        sample_context(),
        limits=RenderLimits(time_limit=2),
    )
    assert parts["subject"].startswith("0123")


def test_printed_size_stops_counting_past_the_cap() -> None:
    big = ["x" * 1000] * 100_000
    assert printed_size(big, 10_000) == 10_001
    assert printed_size(range(10_000), 10**9) >= len(str(list(range(10_000))))
    assert printed_size({"a": [1, 2, 3]}, 1_000) >= len(str({"a": [1, 2, 3]}))


def test_literal_text_repeated_by_loops_is_counted_as_it_is_produced() -> None:
    limits = RenderLimits(max_produced_chars=1_000_000)
    in_macro = (
        "{% macro m() %}{% for i in range(10000) %}{% for j in range(100) %}"
        + "y" * 1000
        + "{% endfor %}{% endfor %}{% endmacro %}{{ m()|length }}"
    )
    assert _error({"html": in_macro}, limits).reason == "output_limit"
    included = '{% for i in range(10000) %}{% include "blocks/footer.html" %}{% endfor %}'
    error = _error({"html": included}, RenderLimits(max_produced_chars=100_000))
    assert error.reason == "output_limit"
    assert "produced more than 100,000 characters" in error.message
