"""The sandbox: escaping, the shipped-template loader, filters, and value markers."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from campaigns.rendering import RenderedHtml, RenderLimits, TemplateError, render_parts
from campaigns.rendering.environment import render_part
from campaigns.rendering.limits import RenderBudget
from tests.unit.rendering.sample_context import sample_context


def render(source: str, part: str = "html", **overrides: object) -> str:
    return render_parts({part: source}, sample_context(**overrides))[part]


# ---------------------------------------------------------------------------------------
# Escaping


def test_customer_data_is_escaped_in_html_once_and_not_at_all_in_text() -> None:
    name = "<script>alert('x')</script> & Co"
    overrides = {"customer_overrides": {"first_name": name}}
    html = render("<p>{{ customer.first_name }}</p>", **overrides)
    assert html == "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co</p>"
    assert render("Hi {{ customer.first_name }}", "subject", **overrides) == f"Hi {name}"
    assert render("Hi {{ customer.first_name }}", "text", **overrides) == f"Hi {name}"
    assert render("{{ customer.first_name|e }}", "html", **overrides).count("&amp;amp;") == 0


def test_escaping_cannot_be_turned_off() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{% autoescape false %}{{ customer.first_name }}{% endautoescape %}")
    assert caught.value.reason == "syntax"
    with pytest.raises(TemplateError):
        render("{{ customer.first_name|safe }}")  # |safe is not offered


def test_html_written_in_the_template_is_kept() -> None:
    assert render('<a href="{{ links.unsubscribe_url }}">Bye</a>') == (
        '<a href="https://news.example.com/u/tok123">Bye</a>'
    )


# ---------------------------------------------------------------------------------------
# Shipped layouts and blocks


def test_shipped_blocks_can_be_imported_included_and_extended() -> None:
    html = render(
        '{% extends "layouts/base.html" %}{% block content %}'
        '{% from "blocks/loyalty.html" import points_balance %}{{ points_balance(loyalty) }}'
        "{% endblock %}"
    )
    assert "12,500" in html and "<!DOCTYPE html>" in html
    footer = render(
        '{% import "blocks/footer.html" as blocks %}{{ blocks.unsubscribe_footer(links, company) }}'
    )
    assert "1 High Street" in footer and "https://news.example.com/u/tok123" in footer
    text = render(
        '{% from "blocks/product_grid.txt" import product_list %}{{ product_list(recommendations) }}', "text"
    )
    assert "* Linen Shirt - €49.90" in text


@pytest.mark.parametrize(
    "statement",
    [
        "{% include 'templates/email/layouts/base.html' %}",
        "{% include '/etc/hostname' %}",
        "{% extends 'layouts/../layouts/base.html' %}",
        "{% import 'layouts/base.txt' as x %}",  # a text layout is not an HTML layout
    ],
)
def test_nothing_but_the_shipped_names_loads(statement: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(statement)
    assert caught.value.reason == "not_found"
    assert "available: blocks/footer.html" in caught.value.message


# ---------------------------------------------------------------------------------------
# Filters


@pytest.mark.parametrize(
    ("locale", "amount", "currency", "expected"),
    [
        ("en-GB", "49.9", "EUR", "€49.90"),
        ("en-US", "1234.5", "USD", "$1,234.50"),
        ("de-DE", "1234.5", "EUR", "1.234,50\u00a0€"),
        ("fr-FR", "1234.5", "EUR", "1\u202f234,50\u00a0€"),
        ("en-GB", "1234", "JPY", "¥1,234"),
        ("en-GB", "-5", "GBP", "-£5.00"),
        ("nl-NL", "2.5", "EUR", "€\u00a02,50"),
        ("en-GB", "10", "CHF", "CHF10.00"),
    ],
)
def test_money_uses_the_customer_locale(locale: str, amount: str, currency: str, expected: str) -> None:
    source = "{{ amount|money(currency) }}"
    context = sample_context(customer_overrides={"locale": locale})
    context["amount"], context["currency"] = Decimal(amount), currency
    assert render_parts({"subject": source}, context)["subject"] == expected


def test_dates_are_shown_in_the_customer_timezone() -> None:
    late = dt.datetime(2026, 3, 14, 23, 30, tzinfo=dt.UTC)
    for zone, expected_date, expected_time in [
        ("America/New_York", "14 March 2026", "19:30"),
        ("Asia/Tokyo", "15 March 2026", "08:30"),
    ]:
        context = sample_context(customer_overrides={"timezone": zone})
        context["moment"] = late
        rendered = render_parts({"subject": "{{ moment|date }} | {{ moment|datetime }}"}, context)["subject"]
        assert rendered == f"{expected_date} | {expected_date}, {expected_time}"
    context = sample_context(customer_overrides={"locale": "en-US", "timezone": "America/New_York"})
    context["moment"] = late
    assert render_parts({"subject": "{{ moment|date('short') }} {{ moment|datetime }}"}, context)[
        "subject"
    ] == ("3/14/2026 March 14, 2026, 7:30\u00a0PM")


def test_marketer_filters() -> None:
    assert render("{{ customer|first_name }}", "subject") == "Ann"
    assert (
        render("{{ customer|first_name('there') }}", "subject", customer_overrides={"first_name": None})
        == "there"
    )
    assert (
        render("{{ customer|first_name }}", "subject", customer_overrides={"first_name": "  ANN  "}) == "Ann"
    )
    assert render(
        "{{ 1|plural('point') }} {{ 2|plural('point') }} {{ 2|plural('child', 'children') }}", "subject"
    ) == ("point points children")
    assert render("{{ loyalty.points|number }} {{ 0.155|percent(1) }}", "subject") == "12,500 15.5%"
    assert render("{{ loyalty.points_expiring_at|days_until }}", "subject") == "47"
    assert render("{{ 'A long subject line here'|truncate(12) }}", "subject") == "A long..."
    assert render("{{ customer.attributes.missing|default('n/a') }}", "subject") == "n/a"
    assert render("{{ 'https://shop.example/p?a=1'|utm('mail', 'email') }}", "subject") == (
        "https://shop.example/p?a=1&utm_source=mail&utm_medium=email"
    )
    assert (
        render("{{ 'https://shop.example/p'|add_query(ref='a b') }}", "subject")
        == "https://shop.example/p?ref=a+b"
    )


def test_filter_errors_are_template_errors() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{ recommendations[0].price|money }}")
    assert "give a currency" in caught.value.message
    with pytest.raises(TemplateError) as caught:
        render("{{ now|date(tz='Mars/Olympus') }}")
    assert "unknown timezone" in caught.value.message


# ---------------------------------------------------------------------------------------
# Value markers: the HTML part renders to the same text with or without them


def _both_ways(source: str) -> tuple[RenderedHtml, RenderedHtml]:
    context = sample_context()
    results = []
    for markers in (True, False):
        budget = RenderBudget(RenderLimits(), time.monotonic() + 5, context)
        result = render_part("html", source, context, budget=budget, markers=markers)
        assert isinstance(result, RenderedHtml)
        results.append(result)
    return results[0], results[1]


CAPTURED = "{% set h %}Hi {{ customer.first_name }}{% endset %}"


@pytest.mark.parametrize(
    ("source", "keeps_markers"),
    [
        ("<p>{{ customer.first_name }} {{ loyalty.points }} {{ customer.first_name }}</p>", True),
        (CAPTURED + "<p>{{ h }}{{ h ~ '!' }}{{ h if h else 'none' }}{{ h * 2 }}</p>", True),
        ("{% macro m(x) %}<b>{{ x }}</b>{% endmacro %}{{ m(customer.first_name) }}", True),
        (
            '{% from "blocks/product_grid.html" import product_grid %}{{ product_grid(recommendations) }}',
            True,
        ),
        (CAPTURED + "{{ h|upper }}", False),
        (CAPTURED + "{{ h|length }}", False),
        (CAPTURED + "{% if h == 'Hi Ann' %}same{% endif %}", False),
        (CAPTURED + "{% if 'Ann' in h %}in{% endif %}", False),
        (CAPTURED + "{{ h[:4] }}", False),
        (CAPTURED + "{{ h[3] }}", False),
        (CAPTURED + "{% for c in h %}{{ c }}.{% endfor %}", False),
        (CAPTURED + "{{ [h, 'x']|join('/') }}", False),
        (CAPTURED + "{{ h.upper() }}", False),
        (CAPTURED + "{{ h is lower }}", False),
        (CAPTURED + "{{ '%s!' % h }}", False),
        (CAPTURED + "{{ dict(a=h).a|upper }}", False),
        (CAPTURED + "{% macro m(x) %}{{ x|upper }}{% endmacro %}{{ m(h) }}", False),
        (CAPTURED + "{{ {'k': h}['k']|length }}", False),
        (CAPTURED + "{{ (h, 1)[0]|length }}", False),
        (CAPTURED + "{% set ns = namespace(v=h) %}{{ ns.v|length }}", False),
        ("{% filter upper %}{{ customer.first_name }}{% endfilter %}", False),
        (
            "{% macro m() %}{{ caller()|trim }}{% endmacro %}{% call m() %} {{ customer.first_name }} {% endcall %}",
            False,
        ),
        ("{% block t %}{{ customer.first_name }}{% endblock %}{{ self.t()|upper }}", False),
    ],
)
def test_markers_never_change_the_html(source: str, keeps_markers: bool) -> None:
    marked, plain = _both_ways(source)
    assert marked.html == plain.html
    assert marked.marked is keeps_markers
    if keeps_markers:
        assert "Ann" not in marked.skeleton or "Ann" not in source
        assert "\ue000" in marked.skeleton


def test_customers_with_different_values_share_one_skeleton() -> None:
    source = (
        '{% from "blocks/loyalty.html" import points_balance %}<p>{{ customer.first_name }}</p>'
        "{{ points_balance(loyalty) }}{{ recommendations[0].price }} {{ now }}"
    )
    skeletons = set()
    for name, points, price in (("Ann", 12_500, Decimal("49.90")), ("Bob", 7, Decimal("5"))):
        context = sample_context(customer_overrides={"first_name": name})
        context["loyalty"]["points"] = points
        context["recommendations"][0]["price"] = price
        budget = RenderBudget(RenderLimits(), time.monotonic() + 5, context)
        result = render_part("html", source, context, budget=budget)
        assert isinstance(result, RenderedHtml)
        skeletons.add(result.skeleton)
        assert name in result.html and f"{points:,}" in result.html
    assert len(skeletons) == 1


def test_each_value_is_kept_once_with_its_escaped_and_raw_forms() -> None:
    context = sample_context(customer_overrides={"first_name": "Zoë & <Co>"})
    budget = RenderBudget(RenderLimits(), time.monotonic() + 5, context)
    result = render_part(
        "html", "{{ customer.first_name }}|{{ customer.first_name }}", context, budget=budget
    )
    assert isinstance(result, RenderedHtml)
    assert result.skeleton == "\ue0000\ue001|\ue0000\ue001"
    assert result.escaped == ("Zoë &amp; &lt;Co&gt;",)
    assert result.raw == ("Zoë & <Co>",)
    assert result.html == "Zoë &amp; &lt;Co&gt;|Zoë &amp; &lt;Co&gt;"


def test_data_holding_a_marker_character_renders_plainly() -> None:
    context = sample_context(customer_overrides={"first_name": "A\ue0000\ue001"})
    budget = RenderBudget(RenderLimits(), time.monotonic() + 5, context)
    result = render_part("html", "<p>{{ customer.first_name }}</p>", context, budget=budget)
    assert isinstance(result, RenderedHtml)
    assert not result.marked
    assert result.html == "<p>A\ue0000\ue001</p>"
