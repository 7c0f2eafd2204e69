from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel

CATEGORY_SEPARATOR = " > "


class Category(models.Model):
    """A node of the category tree, identified by its full path ("Home > Kitchen > Mugs")."""

    path = models.CharField(max_length=500, unique=True)
    name = models.CharField(max_length=200)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    depth = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["path"]

    def __str__(self) -> str:
        return self.path


class Product(TimeStampedModel):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=300)
    description = models.TextField(blank=True, default="")
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products"
    )
    category_path = models.CharField(max_length=500, blank=True, default="", db_index=True)
    brand = models.CharField(max_length=120, blank=True, default="")
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="GBP")
    stock = models.IntegerField(null=True, blank=True, help_text="Empty when stock is not tracked")
    active = models.BooleanField(default=True)
    url = models.URLField(max_length=1000, blank=True, default="")
    image_url = models.URLField(max_length=1000, blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_nonnegative"),
        ]
        indexes = [
            models.Index(fields=["brand"], name="product_brand_idx"),
            models.Index(fields=["active", "stock"], name="product_active_stock_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    @property
    def in_stock(self) -> bool:
        return self.stock is None or self.stock > 0
