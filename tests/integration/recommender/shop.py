"""A small shop with structure a model can learn: customers buy inside "their" category."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
from django.utils import timezone

from catalog.models import Product
from customers.models import Customer, Event, Order, OrderLine

CATEGORIES = ("Home > Mugs", "Garden > Tools", "Toys > Puzzles")


def build_shop(*, customers: int = 60, products_per_category: int = 10, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    products = Product.objects.bulk_create(
        [
            Product(
                sku=f"SKU-{c}-{i:03d}",
                name=f"{category.split(' > ')[-1][:-1]} model {i}",
                description=f"A {category.lower()} item number {i}",
                category_path=category,
                brand=f"Brand{i % 3}",
                price=Decimal("9.99"),
                stock=20,
            )
            for c, category in enumerate(CATEGORIES)
            for i in range(products_per_category)
        ]
    )
    by_category = [
        products[c * products_per_category : (c + 1) * products_per_category] for c in range(len(CATEGORIES))
    ]
    people = Customer.objects.bulk_create(
        [Customer(external_id=f"c{i:04d}", email=f"c{i:04d}@example.com") for i in range(customers)]
    )
    now = timezone.now()
    orders, lines, events = [], [], []
    for i, person in enumerate(people):
        home = by_category[i % len(CATEGORIES)]
        picks = rng.choice(len(home), size=4, replace=False)
        for j, pick in enumerate(picks[:3]):
            order = Order(
                external_id=f"o{i:04d}-{j}",
                customer=person,
                placed_at=now - timedelta(days=int(rng.integers(1, 60))),
            )
            orders.append(order)
            lines.append((order, home[pick], int(rng.integers(1, 3))))
        events.append(
            Event(
                customer=person,
                type="view",
                product=home[picks[3]],
                occurred_at=now - timedelta(days=1),
                idempotency_key=f"ev-{i}",
            )
        )
    Order.objects.bulk_create(orders)
    OrderLine.objects.bulk_create(
        [
            OrderLine(order=o, line_no=1, product=p, sku=p.sku, quantity=q, unit_price=p.price)
            for o, p, q in lines
        ]
    )
    Event.objects.bulk_create(events)
    return {"products": products, "customers": people, "by_category": by_category}
