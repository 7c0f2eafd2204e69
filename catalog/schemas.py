"""Row schema for products, shared by the bulk API, the single-record API and the CSV importers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from catalog.models import CATEGORY_SEPARATOR
from core import rows as r


def category_path(value: Any) -> str:
    """`Home > Kitchen > Mugs`; `/` is accepted as a separator too and empty parts are dropped."""
    raw = r.text(500)(value)
    parts = [p.strip() for p in raw.replace("/", ">").split(">")]
    parts = [p for p in parts if p]
    if any(len(p) > 200 for p in parts):
        raise r.FieldInvalid("Each category name is at most 200 characters.")
    if len(parts) > 8:
        raise r.FieldInvalid("At most 8 levels of categories.")
    return CATEGORY_SEPARATOR.join(parts)


PRODUCT_FIELDS = (
    "name",
    "description",
    "category",
    "brand",
    "price",
    "currency",
    "stock",
    "active",
    "url",
    "image_url",
    "attributes",
)

PRODUCT = r.RowSchema(
    name="product",
    fields={
        "sku": r.Field(r.identifier(64), required=True),
        "name": r.Field(r.text(300, blank=False)),
        "description": r.Field(r.text(20_000)),
        "category": r.Field(category_path),
        "brand": r.Field(r.text(120)),
        "price": r.Field(r.decimal(max_digits=12, decimal_places=2, min_value=Decimal(0))),
        "currency": r.Field(r.currency),
        "stock": r.Field(r.integer(min_value=0), nullable=True),
        "active": r.Field(r.boolean),
        "url": r.Field(r.url),
        "image_url": r.Field(r.url),
        "attributes": r.Field(r.json_object),
    },
)

REQUIRED_FOR_NEW = ("name", "price")
