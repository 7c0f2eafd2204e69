from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import factory

from loyalty.models import LoyaltyProgram, Membership, Reward, Tier
from tests.factories.customers import CustomerFactory


class LoyaltyProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LoyaltyProgram

    name = factory.Sequence(lambda n: f"Rewards club {n}")
    slug = factory.Sequence(lambda n: f"club-{n}")
    currency = "GBP"
    points_per_currency_unit = Decimal("1")
    event_points = factory.LazyFunction(dict)


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier

    program = factory.SubFactory(LoyaltyProgramFactory)
    name = factory.Sequence(lambda n: f"Tier {n}")
    threshold = 0
    multiplier = Decimal("1")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    program = factory.SubFactory(LoyaltyProgramFactory)
    customer = factory.SubFactory(CustomerFactory)
    joined_at = datetime(2024, 1, 1, tzinfo=UTC)


class RewardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reward

    program = factory.SubFactory(LoyaltyProgramFactory)
    name = factory.Sequence(lambda n: f"Reward {n}")
    cost_points = 100
