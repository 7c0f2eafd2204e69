from __future__ import annotations

import django_filters
from django.db.models import Q

from catalog.models import CATEGORY_SEPARATOR, Product
from core.filters import IsoDateTimeFilter, StrictFilterSet


class ProductFilter(StrictFilterSet):
    sku = django_filters.CharFilter()
    category = django_filters.CharFilter(
        method="filter_category", label="Category path; includes sub-categories"
    )
    brand = django_filters.CharFilter(lookup_expr="iexact")
    active = django_filters.BooleanFilter()
    in_stock = django_filters.BooleanFilter(method="filter_in_stock")
    price_min = django_filters.NumberFilter(field_name="price", lookup_expr="gte")
    price_max = django_filters.NumberFilter(field_name="price", lookup_expr="lte")
    updated_after = IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Product
        fields = ["sku", "category", "brand", "active", "in_stock", "price_min", "price_max", "updated_after"]

    def filter_category(self, queryset, name, value):
        path = CATEGORY_SEPARATOR.join(p.strip() for p in value.split(">") if p.strip())
        return queryset.filter(Q(category_path=path) | Q(category_path__startswith=path + CATEGORY_SEPARATOR))

    def filter_in_stock(self, queryset, name, value):
        stocked = Q(stock__isnull=True) | Q(stock__gt=0)
        return queryset.filter(stocked) if value else queryset.exclude(stocked)
