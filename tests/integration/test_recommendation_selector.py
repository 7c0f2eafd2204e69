from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.models import Product
from customers.models import Customer, Order, OrderLine
from recommender.engine.types import Reason
from recommender.explanations import stored_explanation
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


def test_compact_explanations_are_rendered_when_read(shop, django_assert_max_num_queries):
    """Rows stored as (reason, because-product) read as the JSON body the scorer used to store,
    with the product's name as it is now; a deleted because-product gives the nameless text."""
    products, alice, bob = shop
    version = RecommenderConfig.objects.get(name="default").active_version
    gone = Product.objects.create(sku="GONE", name="Gone soon", price=Decimal("1.00"))
    rows = [
        (1, products[0], Reason.BECAUSE_YOU_BOUGHT, products[3]),
        (2, products[2], Reason.BECAUSE_YOU_BOUGHT, gone),
    ]
    rows.append((3, products[3], Reason.SIMILAR_CUSTOMERS, None))
    for rank, product, reason, because in rows:
        Recommendation.objects.create(
            model_version=version,
            customer=bob,
            rank=rank,
            product=product,
            score=1.0,
            reason=reason,
            because_product=because,
        )
    Product.objects.filter(pk=products[3].pk).update(name="Lamp, renamed")
    Product.objects.filter(pk=gone.pk).delete()
    with django_assert_max_num_queries(6):
        cards = recommendations_for(customer_ids=[bob.pk], rules=RecommendationRules(n=3))[bob.pk]
    assert [(c["sku"], c["explanation"], c["because"]) for c in cards] == [
        ("P0", "Because you bought Lamp, renamed", ["P3"]),
        ("P2", "Because you bought ", []),
        ("P3", "Customers with similar purchases bought this", []),
    ]
    stored = Recommendation.objects.select_related("because_product").get(customer=bob, rank=1)
    assert stored_explanation(stored) == {
        "reason": "because_you_bought",
        "text": "Because you bought Lamp, renamed",
        "because": ["P3"],
    }
    # A row with its own JSON body keeps it.
    legacy = Recommendation.objects.select_related("because_product").get(customer=alice, rank=2)
    assert stored_explanation(legacy) == {"text": "Because you bought Product 3", "because": ["P3"]}
