from __future__ import annotations

from decimal import Decimal

import factory

from catalog.models import Category, Product


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("path",)

    path = factory.Sequence(lambda n: f"Category {n}")
    name = factory.LazyAttribute(lambda o: o.path.rsplit(" > ", 1)[-1])
    depth = factory.LazyAttribute(lambda o: o.path.count(" > "))


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:06d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    price = Decimal("9.99")
    currency = "GBP"
    category_path = ""
    brand = "Acme"
