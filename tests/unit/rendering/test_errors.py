"""Every failure is one TemplateError naming the part, the line and what to do."""

from __future__ import annotations

import pytest

from campaigns.rendering import TemplateError, check_source, render_parts
from tests.unit.rendering.sample_context import sample_context


def _error(parts: dict[str, str], **overrides: object) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        render_parts(parts, sample_context(**overrides))
    return caught.value


def test_a_syntax_error_names_its_line() -> None:
    error = _error({"html": "<p>one</p>\n<p>two</p>\n{% if customer.first_name %}\n<p>never closed</p>"})
    assert error.as_dicts() == [{"field": "html", "line": 4, "message": error.message}]
    assert error.reason == "syntax"
    assert "endif" in error.message


def test_an_unknown_variable_names_its_line_and_the_variables_there_are() -> None:
    error = _error({"subject": "Hello\n{{ customer.first_name }}\n{{ custmer.first_name }}"})
    assert (error.field, error.line, error.reason) == ("subject", 3, "undefined")
    assert "'custmer' is not a variable" in error.message
    assert "customer, loyalty, recommendations" in error.message


def test_a_misspelt_field_gets_a_suggestion() -> None:
    error = _error({"html": "<p>\n{{ customer.frist_name }}</p>"})
    assert error.line == 2
    assert "did you mean 'first_name'?" in error.message


def test_printing_none_is_an_error_not_the_word_none() -> None:
    error = _error({"subject": "Hi {{ customer.first_name }}"}, customer_overrides={"first_name": None})
    assert error.reason == "empty"
    assert "default(" in error.message


def test_a_missing_field_is_falsy_when_tested_and_default_fills_it() -> None:
    rendered = render_parts(
        {
            "subject": "{% if customer.attributes.nickname %}x{% else %}Hi{% endif %} "
            "{{ customer.attributes.nickname|default('friend') }} "
            "{{ customer.first_name|default('there', true) }}"
        },
        sample_context(customer_overrides={"first_name": ""}),
    )
    assert rendered["subject"] == "Hi friend there"


def test_an_error_inside_a_shipped_block_names_the_marketer_line_and_the_block() -> None:
    context = sample_context()
    context["recommendations"][0]["currency"] = "EURO"  # not an ISO code: |money refuses it
    with pytest.raises(TemplateError) as caught:
        render_parts(
            {
                "html": '{% from "blocks/product_grid.html" import product_grid %}\n'
                "<h1>Picks</h1>\n{{ product_grid(recommendations) }}"
            },
            context,
        )
    error = caught.value
    assert error.line == 3
    assert "inside blocks/product_grid.html line" in error.message
    assert "'EURO' is not an ISO currency code" in error.message


def test_problems_of_several_parts_are_reported_together() -> None:
    error = _error({"subject": "{{ nope }}", "html": "<p>fine</p>", "text": "{% for %}"})
    assert [(p["field"], p["line"]) for p in error.as_dicts()] == [("subject", 1), ("text", 1)]
    assert str(error).startswith("subject, line 1: ")


def test_check_source_compiles_without_rendering() -> None:
    check_source("html", "{{ anything.at.all }}")  # names are only known at render time
    with pytest.raises(TemplateError) as caught:
        check_source("subject", "{{ 'unclosed }}")
    assert caught.value.reason == "syntax"
    with pytest.raises(ValueError, match="unknown message part"):
        check_source("footer", "x")


def test_the_marker_characters_are_refused_in_sources() -> None:
    for character in ("\ue000", "\ue001", "\ue002", "\ue006"):
        with pytest.raises(TemplateError) as caught:
            check_source("html", f"<p>{character}</p>")
        assert caught.value.reason == "invalid"
