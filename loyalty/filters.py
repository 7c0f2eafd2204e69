from __future__ import annotations

import django_filters

from core.filters import IsoDateTimeFilter, StrictFilterSet
from loyalty.models import Membership, PointsTransaction, Tier


class TierFilter(StrictFilterSet):
    class Meta:
        model = Tier
        fields = ["program"]


class MembershipFilter(StrictFilterSet):
    customer = django_filters.CharFilter(field_name="customer__external_id")
    program = django_filters.CharFilter(field_name="program__slug")
    tier = django_filters.CharFilter(field_name="tier__name", lookup_expr="iexact")

    class Meta:
        model = Membership
        fields = ["customer", "program", "tier"]


class TransactionFilter(StrictFilterSet):
    customer = django_filters.CharFilter(field_name="membership__customer__external_id")
    kind = django_filters.ChoiceFilter(choices=PointsTransaction.Kind.choices)
    occurred_after = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")

    class Meta:
        model = PointsTransaction
        fields = ["membership", "customer", "kind", "occurred_after"]
