"""Builders for experiments whose variants differ by send time, recommender or channel.

Every campaign gets a fixed assignment salt, so which customer lands in which variant is the same
on every run (a random salt made earlier tests flaky).
"""

from __future__ import annotations

from campaigns.models import Campaign, Channel, Variant
from catalog.models import Product
from customers.models import PushSubscription
from experiments.models import Experiment
from recommender.models import ModelVersion, Recommendation, RecommenderConfig
from tests.integration.campaigns import scenario

SALT = "dimensions-fixed-salt"


def recommender(name: str, customers, products, *, default: bool = False) -> RecommenderConfig:
    """A recommender whose active model recommends exactly `products` (in order) to every customer."""
    config = RecommenderConfig.objects.create(name=name, algorithm=name, is_default=default)
    version = ModelVersion.objects.create(config=config, algorithm=name, status=ModelVersion.Status.READY)
    config.active_version = version
    config.save(update_fields=["active_version"])
    Recommendation.objects.bulk_create(
        [
            Recommendation(
                model_version=version,
                customer=customer,
                rank=rank,
                product=product,
                score=1.0 / rank,
                explanation={"text": f"From {name}"},
            )
            for customer in customers
            for rank, product in enumerate(products, start=1)
        ]
    )
    return config


def products(prefix: str, n: int) -> list[Product]:
    return Product.objects.bulk_create(
        [
            Product(
                sku=f"{prefix}-{i}",
                name=f"{prefix} product {i}",
                price="12.50",
                stock=5,
                url=f"https://shop.example.com/{prefix}/{i}",
                category_path="Home > Mugs",
            )
            for i in range(n)
        ]
    )


def subscribe_push(customers, receiver) -> None:
    PushSubscription.objects.bulk_create(
        [
            PushSubscription(
                customer=c,
                kind=PushSubscription.Kind.HTTP,
                endpoint=receiver.url("/push"),
                token=f"dev-{c.pk}",
            )
            for c in customers
        ]
    )


def experiment_campaign(customers, *, variants: list[dict], metric: str = "click_rate", **campaign_fields):
    """A draft campaign with one variant per dict (fields set on it) and an A/B experiment."""
    campaign_fields.setdefault("assignment_salt", SALT)
    campaign = scenario.make_campaign(
        scenario.make_segment(customers), variants=len(variants), **campaign_fields
    )
    for variant, fields in zip(campaign.variants.order_by("name"), variants, strict=True):
        for name, value in fields.items():
            setattr(variant, name, value)
        variant.save()
    Experiment.objects.create(campaign=campaign, metric=metric, method="frequentist", correction="none")
    return Campaign.objects.get(pk=campaign.pk)


def variant(campaign: Campaign, name: str) -> Variant:
    return campaign.variants.get(name=name)


EMAIL = Channel.EMAIL
PUSH = Channel.PUSH
