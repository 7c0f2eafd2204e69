from __future__ import annotations

from rest_framework import serializers

from catalog.models import Category, Product
from core.openapi import FlexibleDecimalField


class ProductSerializer(serializers.ModelSerializer):
    category = serializers.CharField(source="category_path", read_only=True)
    in_stock = serializers.BooleanField(read_only=True)

    class Meta:
        model = Product
        fields = [
            "sku",
            "name",
            "description",
            "category",
            "brand",
            "price",
            "currency",
            "stock",
            "in_stock",
            "active",
            "url",
            "image_url",
            "attributes",
            "created_at",
            "updated_at",
        ]


class ProductUpdateSerializer(serializers.Serializer):
    """Fields left out keep their stored value; a new product needs a name and a price."""

    name = serializers.CharField(max_length=300, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    category = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="Home > Kitchen > Mugs"
    )
    brand = serializers.CharField(max_length=120, required=False, allow_blank=True)
    price = FlexibleDecimalField(max_digits=12, decimal_places=2, min_value=0, required=False)
    currency = serializers.CharField(max_length=3, required=False, help_text="ISO 4217")
    stock = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    active = serializers.BooleanField(required=False)
    url = serializers.URLField(max_length=1000, required=False, allow_blank=True)
    image_url = serializers.URLField(max_length=1000, required=False, allow_blank=True)
    attributes = serializers.DictField(required=False)


class ProductRowSerializer(ProductUpdateSerializer):
    sku = serializers.CharField(max_length=64)


class CategorySerializer(serializers.ModelSerializer):
    parent = serializers.CharField(source="parent.path", read_only=True, allow_null=True)

    class Meta:
        model = Category
        fields = ["id", "path", "name", "parent", "depth"]
