"""Writes to the catalog: bulk product upserts and the category tree they need."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from catalog import schemas
from catalog.models import CATEGORY_SEPARATOR, Category, Product
from core.bulk import BulkResult
from core.rows import RowError, validate_rows

_CHUNK = 900


def ensure_categories(*, paths: Iterable[str]) -> dict[str, Category]:
    """Every category on the given paths, creating the missing ones level by level (one insert per level)."""
    wanted: set[str] = set()
    for path in paths:
        parts = path.split(CATEGORY_SEPARATOR) if path else []
        for depth in range(1, len(parts) + 1):
            wanted.add(CATEGORY_SEPARATOR.join(parts[:depth]))
    if not wanted:
        return {}
    found = {c.path: c for c in Category.objects.filter(path__in=wanted)}
    missing = sorted(wanted - set(found), key=lambda p: p.count(CATEGORY_SEPARATOR))
    by_depth: dict[int, list[str]] = {}
    for path in missing:
        by_depth.setdefault(path.count(CATEGORY_SEPARATOR), []).append(path)
    for depth in sorted(by_depth):
        new = []
        for path in by_depth[depth]:
            parent_path, _, name = path.rpartition(CATEGORY_SEPARATOR)
            new.append(Category(path=path, name=name or path, parent=found.get(parent_path), depth=depth))
        Category.objects.bulk_create(new, ignore_conflicts=True)
        found.update({c.path: c for c in Category.objects.filter(path__in=by_depth[depth])})
    return found


def upsert_products(*, rows: Sequence[Any], partial: bool = False) -> BulkResult:
    """Create or update products by `sku`; fields a row leaves out keep their stored value.

    A new product needs at least a name and a price. The same payload twice changes nothing.
    """
    from core.rows import mark_duplicates

    result = BulkResult(received=len(rows), partial=partial)
    valid, errors = validate_rows(schemas.PRODUCT, rows)
    valid = mark_duplicates(valid, "sku", errors)
    existing: dict[str, Product] = {}
    skus = [row["sku"] for _, row in valid]
    for start in range(0, len(skus), _CHUNK):
        existing.update({p.sku: p for p in Product.objects.filter(sku__in=skus[start : start + _CHUNK])})
    accepted = []
    for index, row in valid:
        if row["sku"] not in existing:
            missing = [f for f in schemas.REQUIRED_FOR_NEW if f not in row]
            if missing:
                errors.extend(RowError(index, f, "Required for a new product.", "required") for f in missing)
                continue
        accepted.append((index, row))
    result.errors = sorted(errors, key=lambda e: e.index)
    if result.rejected:
        return result.finish_rejected()
    result.failed = len({e.index for e in errors})
    now = timezone.now()
    with transaction.atomic():
        categories = ensure_categories(paths=[row["category"] for _, row in accepted if row.get("category")])
        to_create: list[Product] = []
        to_update: dict[tuple[str, ...], list[Product]] = {}
        for _, row in accepted:
            values = _model_values(row, categories)
            product = existing.get(row["sku"])
            if product is None:
                to_create.append(Product(sku=row["sku"], **values))
                continue
            changed = tuple(sorted(f for f, v in values.items() if getattr(product, f) != v))
            if changed:
                for f in changed:
                    setattr(product, f, values[f])
                product.updated_at = now
                to_update.setdefault(changed, []).append(product)
        Product.objects.bulk_create(to_create, batch_size=2000)
        for fields, products in to_update.items():
            Product.objects.bulk_update(products, [*fields, "updated_at"], batch_size=2000)
    result.created = len(to_create)
    result.updated = sum(len(p) for p in to_update.values())
    result.unchanged = len(accepted) - result.created - result.updated
    return result


def _model_values(row: dict[str, Any], categories: dict[str, Category]) -> dict[str, Any]:
    values = {f: row[f] for f in schemas.PRODUCT_FIELDS if f in row and f != "category"}
    if "category" in row:
        values["category_path"] = row["category"]
        category = categories.get(row["category"]) if row["category"] else None
        values["category_id"] = category.pk if category is not None else None
    return values
