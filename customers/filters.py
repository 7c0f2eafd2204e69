"""Filters for the customer, order and event lists (django-filter)."""

from __future__ import annotations

import django_filters
from django.db.models import Exists, OuterRef
from django.db.models.functions import Lower

from core.filters import IsoDateTimeFilter, StrictFilterSet
from customers.models import Channel, ConsentStatus, Customer, CustomerConsent, Event, EventType, Order


def with_email(queryset, address: str):
    """Customers whose address is `address`, ignoring case (served by the lower(email) index)."""
    return queryset.alias(email_lower=Lower("email")).filter(email_lower=address.strip().lower())


class CustomerFilter(StrictFilterSet):
    external_id = django_filters.CharFilter()
    # Deprecated (an address in a URL ends up in access logs and browser history): the list view
    # answers it with a Deprecation header pointing at POST /customers/search/.
    email = django_filters.CharFilter(method="filter_email")
    country = django_filters.CharFilter(field_name="country", lookup_expr="iexact")
    consent = django_filters.ChoiceFilter(
        choices=Channel.choices, method="filter_consent", label="Channel with granted consent"
    )
    tier = django_filters.CharFilter(
        field_name="memberships__tier__name", lookup_expr="iexact", distinct=True
    )
    updated_after = IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Customer
        fields = ["external_id", "email", "country", "consent", "tier", "updated_after", "created_after"]

    def filter_email(self, queryset, name, value):
        return with_email(queryset, value)

    def filter_consent(self, queryset, name, value):
        granted = CustomerConsent.objects.filter(
            customer=OuterRef("pk"), channel=value, status=ConsentStatus.GRANTED
        )
        return queryset.filter(Exists(granted))


class OrderFilter(StrictFilterSet):
    customer = django_filters.CharFilter(field_name="customer__external_id")
    status = django_filters.ChoiceFilter(choices=Order.Status.choices)
    placed_after = IsoDateTimeFilter(field_name="placed_at", lookup_expr="gte")
    placed_before = IsoDateTimeFilter(field_name="placed_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields = ["customer", "status", "placed_after", "placed_before"]


class EventFilter(StrictFilterSet):
    customer = django_filters.CharFilter(field_name="customer__external_id")
    type = django_filters.ChoiceFilter(choices=EventType.choices)
    product = django_filters.CharFilter(field_name="product__sku")
    occurred_after = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["customer", "type", "product", "occurred_after", "occurred_before"]
