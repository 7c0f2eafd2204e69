"""A customer's message context as the Django side builds it (see docs/templates.md).

Deterministic: no clock, no randomness. Pass keyword overrides for the top-level names,
and ``customer_overrides={...}`` to change fields of the customer. Also used by
``benchmarks/rendering.py``.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

SEND_TIME = dt.datetime(2026, 3, 14, 9, 30, tzinfo=dt.UTC)


def sample_recommendations(count: int = 4) -> list[dict[str, Any]]:
    catalogue = [
        ("Linen Shirt", "Apparel", Decimal("49.90"), "Because you bought chinos"),
        ("Canvas Tote", "Bags", Decimal("19.00"), "Popular with customers like you"),
        ("Espresso Cups (set of 2)", "Kitchen", Decimal("24.50"), "Goes with your coffee grinder"),
        ("Wool Socks", "Apparel", Decimal("12.00"), "Back in stock"),
        ("Desk Lamp", "Home", Decimal("89.00"), "Trending in Home"),
        ("Notebook A5", "Stationery", Decimal("7.95"), None),
    ]
    items = []
    for index, (name, category, price, why) in enumerate(catalogue[:count]):
        sku = f"SKU-{1000 + index}"
        items.append(
            {
                "name": name,
                "url": f"https://shop.example.com/p/{sku.lower()}",
                "image_url": f"https://cdn.example.com/img/{sku.lower()}.jpg",
                "price": price,
                "currency": "EUR",
                "explanation": why,
                "sku": sku,
                "category": category,
            }
        )
    return items


def sample_context(
    *, customer_overrides: dict[str, Any] | None = None, recommendations: int = 4, **overrides: Any
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "customer": {
            "first_name": "Ann",
            "last_name": "Example",
            "email": "ann@example.com",
            "locale": "en-GB",
            "timezone": "Europe/London",
            "country": "GB",
            "attributes": {"vip": True, "favourite_category": "Apparel", "shoe_size": 38},
        },
        "loyalty": {
            "program": "Reachly Rewards",
            "tier": "Silver",
            "points": 12_500,
            "points_expiring": 1_200,
            "points_expiring_at": dt.date(2026, 4, 30),
            "next_tier": "Gold",
            "points_to_next_tier": 2_500,
        },
        "recommendations": sample_recommendations(recommendations),
        "campaign": {"name": "Spring picks", "variant": "A"},
        "links": {
            "unsubscribe_url": "https://news.example.com/u/tok123",
            "preferences_url": "https://news.example.com/prefs/tok123",
        },
        "company": {
            "name": "Example Shop Ltd",
            "postal_address": "1 High Street\nLondon EC1A 1AA\nUnited Kingdom",
        },
        "now": SEND_TIME,
    }
    if customer_overrides:
        context["customer"].update(customer_overrides)
    context.update(copy.deepcopy(overrides))
    return context


#: A typical campaign email: the shipped layout, a greeting, points and four recommendations.
TYPICAL_EMAIL = {
    "subject": "{{ customer|first_name }}, {{ recommendations|length }} picks for you",
    "preheader": "You have {{ loyalty.points|number }} points",
    "html": """{% extends "layouts/base.html" %}
{% from "blocks/product_grid.html" import product_grid %}
{% from "blocks/loyalty.html" import points_balance %}
{% block content %}
<h1>Hi {{ customer|first_name }}</h1>
<p>New in this week: <a href="https://shop.example.com/new">see what's new</a>.</p>
{{ points_balance(loyalty) }}
{{ product_grid(recommendations, heading="Picked for you") }}
{% endblock %}""",
}
