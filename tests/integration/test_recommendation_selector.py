from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.models import Product
from customers.models import Customer, Order, OrderLine
from recommender.models import ModelVersion, Recommendation, RecommenderConfig
from recommender.selectors import RecommendationRules, recommendations_for


@pytest.fixture
def shop(db):
    products = [
        Product.objects.create(
            sku=f"P{i}", name=f"Product {i}", price=Decimal("5.00"), category_path=cat, stock=stock
        )
        for i, (cat, stock) in enumerate(
            [("Home > Mugs", 10), ("Home > Mugs", 0), ("Garden", 3), ("Home > Lamps", None), ("Garden", 8)]
        )
    ]
    alice = Customer.objects.create(external_id="alice", email="alice@example.com")
    bob = Customer.objects.create(external_id="bob", email="bob@example.com")
    config = RecommenderConfig.objects.create(name="default", is_default=True)
    version = ModelVersion.objects.create(
        config=config, algorithm="item_knn", status=ModelVersion.Status.READY
    )
    config.active_version = version
    config.save()
    for rank, product in enumerate([products[1], products[0], products[2]], start=1):
        Recommendation.objects.create(
            model_version=version,
            customer=alice,
            rank=rank,
            product=product,
            score=1.0 / rank,
            explanation={"text": "Because you bought Product 3", "because": ["P3"]},
        )
    order = Order.objects.create(external_id="o1", customer=bob, placed_at=timezone.now())
    OrderLine.objects.create(
        order=order, line_no=1, product=products[4], sku="P4", quantity=3, unit_price=Decimal("5")
    )
    OrderLine.objects.create(
        order=order, line_no=2, product=products[2], sku="P2", quantity=1, unit_price=Decimal("5")
    )
    return products, alice, bob


def test_stored_recommendations_skip_out_of_stock_and_keep_rank(shop):
    _, alice, _ = shop
    recs = recommendations_for(customer_ids=[alice.pk], rules=RecommendationRules(n=2))[alice.pk]
    assert [r["sku"] for r in recs] == ["P0", "P2"]
    assert recs[0]["explanation"] == "Because you bought Product 3"


def test_category_rule_and_popularity_top_up_without_repeat_purchases(shop):
    _, alice, bob = shop
    recs = recommendations_for(
        customer_ids=[alice.pk, bob.pk], rules=RecommendationRules(n=2, categories=("Garden",))
    )
    assert [r["sku"] for r in recs[alice.pk]] == ["P2", "P4"]
    # Bob bought both garden products, so nothing in Garden is left to offer him.
    assert recs[bob.pk] == []


def test_fixed_query_count_for_a_batch(shop, django_assert_max_num_queries):
    _, alice, bob = shop
    with django_assert_max_num_queries(6):
        recommendations_for(customer_ids=[alice.pk, bob.pk], rules=RecommendationRules(n=4))
