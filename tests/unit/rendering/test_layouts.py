"""The shipped layouts and blocks render with the documented context."""

from __future__ import annotations

import pytest
from jinja2 import nodes

from campaigns.rendering import EmailTemplates, render_email, render_parts
from campaigns.rendering.environment import environment
from tests.unit.rendering.sample_context import TYPICAL_EMAIL, sample_context

TEXT_EMAIL = """{% extends "layouts/base.txt" %}
{% from "blocks/product_grid.txt" import product_list %}
{% from "blocks/loyalty.txt" import loyalty_status, points_balance %}
{% block content %}
Hi {{ customer|first_name }},

{{ points_balance(loyalty) }}
{{ loyalty_status(loyalty) }}
{{ product_list(recommendations, heading="Picked for you") }}
{% endblock %}"""


def test_the_typical_email_renders_every_block() -> None:
    html = render_email(EmailTemplates(**TYPICAL_EMAIL), sample_context()).html  # type: ignore[arg-type]
    assert html.startswith('<!DOCTYPE html>\n<html lang="en-GB">')
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "@media only screen and (max-width: 620px)" in html
    for expected in (
        "<h1>Hi Ann</h1>",
        '<span class="points">12,500</span> points',
        "1,200 points expire on 30 April 2026",
        '<img src="https://cdn.example.com/img/sku-1000.jpg" alt="Linen Shirt" width="260">',
        '<p class="product-price">€49.90</p>',
        '<p class="product-why">Because you bought chinos</p>',
        '<a href="https://news.example.com/u/tok123" class="unsubscribe">Unsubscribe</a>',
        "Example Shop Ltd<br>1 High Street<br>London EC1A 1AA<br>United Kingdom",
    ):
        assert expected in html, expected
    assert html.count('class="column product"') == 4


def test_a_customer_without_loyalty_or_recommendations_gets_a_clean_email() -> None:
    context = sample_context(loyalty=None, recommendations=0)
    html = render_email(EmailTemplates(**{**TYPICAL_EMAIL, "preheader": None}), context).html  # type: ignore[arg-type]
    assert "points-balance" not in html and "Picked for you" not in html and "product-grid" not in html
    assert "Unsubscribe" in html


def test_an_odd_number_of_recommendations_fills_the_last_row() -> None:
    html = render_email(EmailTemplates(**TYPICAL_EMAIL), sample_context(recommendations=3)).html  # type: ignore[arg-type]
    assert html.count('class="column product"') == 4  # three products and one empty cell
    assert "Espresso Cups (set of 2)" in html and "Notebook" not in html


def test_the_text_layout_and_blocks_render() -> None:
    text = render_parts({"text": TEXT_EMAIL}, sample_context(customer_overrides={"locale": "de-DE"}))["text"]
    for expected in (
        "Hi Ann,",
        "Your points: 12.500 points",
        "Reachly Rewards - Your tier: Silver",
        "* Linen Shirt - 49,90\u00a0€",
        "  https://shop.example.com/p/sku-1000",
        "Unsubscribe: https://news.example.com/u/tok123",
        "1 High Street",
    ):
        assert expected in text, expected
    assert "&amp;" not in text


def test_the_push_blocks_render() -> None:
    source = '{% from "blocks.txt" import top_pick, points_reminder %}{{ top_pick(recommendations, fallback="New in") }} | {{ points_reminder(loyalty) }}'
    rendered = render_parts({"push_body": source}, sample_context())["push_body"]
    assert " ".join(rendered.split()) == (
        "Picked for you: Linen Shirt | 1,200 points expire on 30 April 2026 - use them before they are gone."
    )
    empty = render_parts({"push_body": source}, sample_context(loyalty=None, recommendations=0))["push_body"]
    assert " ".join(empty.split()) == "New in |"


@pytest.mark.parametrize("kind", ["html", "text", "push"])
def test_shipped_blocks_hold_only_macros(kind: str) -> None:
    """Jinja keeps an imported template's module for every later render; a block with
    top-level output or variables would carry one render's values into the next."""
    env = environment(kind)
    for name in env.loader.list_templates():  # type: ignore[union-attr]
        if name.startswith("layouts/"):
            continue
        tree = env.parse(env.loader.get_source(env, name)[0])  # type: ignore[union-attr]
        for node in tree.body:
            if isinstance(node, nodes.Output):
                assert all(isinstance(n, nodes.TemplateData) and not n.data.strip() for n in node.nodes), name
            else:
                assert isinstance(node, (nodes.Macro, nodes.FromImport, nodes.Import)), (name, node)
