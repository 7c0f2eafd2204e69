"""Only plain data reaches a template, in the documented shape."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from markupsafe import Markup

from campaigns.rendering import ContextError, TemplateError, check_message_context, check_plain, render_parts
from tests.unit.rendering.sample_context import sample_context


class SafeText(str):
    """Like Django's SafeString: a str subclass a template would print unescaped."""

    def __html__(self) -> str:
        return str(self)


def test_the_sample_context_follows_the_contract() -> None:
    check_plain(sample_context())
    check_message_context(sample_context())


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (Markup("<b>x</b>"), "context.customer.first_name"),
        (SafeText("<b>x</b>"), "context.customer.first_name"),
        (object(), "context.customer.first_name"),
        (lambda: 1, "context.customer.first_name"),
        ({1: "x"}, "context.customer.first_name"),
        ([1, {"a": {2}}], "context.customer.first_name[1].a"),
    ],
)
def test_anything_but_plain_data_is_refused_with_its_path(value: object, where: str) -> None:
    with pytest.raises(ContextError, match="^" + re.escape(where) + " "):
        check_plain(sample_context(customer_overrides={"first_name": value}))


def test_rendering_checks_the_context_first() -> None:
    with pytest.raises(ContextError):
        render_parts(
            {"html": "{{ customer.first_name }}"},
            sample_context(customer_overrides={"first_name": SafeText("<b>")}),
        )


def test_plain_values_of_every_kind_are_accepted() -> None:
    check_plain({"a": [1, 2.5, True, None, Decimal("1.10"), dt.date(2026, 1, 1), dt.time(9), "x", (1, 2)]})


def test_missing_contract_keys_are_the_callers_bug() -> None:
    context = sample_context()
    del context["company"]
    with pytest.raises(ContextError, match="lacks company"):
        check_message_context(context)
    context = sample_context()
    del context["recommendations"][1]["explanation"]
    with pytest.raises(ContextError, match=r"recommendations\[1\] lacks explanation"):
        check_message_context(context)
    with pytest.raises(ContextError, match="timezone-aware"):
        check_message_context(sample_context(now=dt.datetime(2026, 1, 1)))


def test_a_rendered_value_is_escaped_even_if_it_looks_like_html() -> None:
    with pytest.raises(TemplateError):
        render_parts({"html": "{{ customer.first_name|safe }}"}, sample_context())
