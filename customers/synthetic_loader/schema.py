"""Which model each generator table fills, and how each generator column maps onto its field.

Both writers (binary COPY on PostgreSQL, `bulk_create` elsewhere) start from here, so a
generator column that does not match its model is refused the same way whatever the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from django.apps import apps
from django.db import models

from core.hashing import email_digest
from core.synthetic import Table

# Generator tables and the models they fill, in an order that satisfies foreign keys.
TABLE_MODELS: dict[str, str] = {
    "categories": "catalog.Category",
    "products": "catalog.Product",
    "loyalty_programs": "loyalty.LoyaltyProgram",
    "tiers": "loyalty.Tier",
    "rewards": "loyalty.Reward",
    "customers": "customers.Customer",
    "consent_records": "customers.ConsentRecord",
    "consents": "customers.CustomerConsent",
    "push_subscriptions": "customers.PushSubscription",
    "suppressions": "customers.Suppression",
    "orders": "customers.Order",
    "order_lines": "customers.OrderLine",
    "events": "customers.Event",
    "memberships": "loyalty.Membership",
    "points_transactions": "loyalty.PointsTransaction",
    "points_lots": "loyalty.PointsLot",
    "redemptions": "loyalty.Redemption",
}

# Storage kinds, named after PostgreSQL types; SQLite only needs them to convert values.
_KIND_BY_FIELD_TYPE = {
    "BigAutoField": "int8",
    "BigIntegerField": "int8",
    "AutoField": "int4",
    "IntegerField": "int4",
    "PositiveIntegerField": "int4",
    "SmallIntegerField": "int2",
    "PositiveSmallIntegerField": "int2",
    "BooleanField": "bool",
    "DateTimeField": "timestamptz",
    "DecimalField": "numeric",
    "CharField": "text",
    "TextField": "text",
    "EmailField": "text",
    "URLField": "text",
    "SlugField": "text",
    "JSONField": "jsonb",
    "GenericIPAddressField": "inet",
}


def models_by_table() -> dict[str, type[models.Model]]:
    """The models of `TABLE_MODELS`, by generator table, in foreign-key order."""
    return {name: apps.get_model(label) for name, label in TABLE_MODELS.items()}


def synthetic_models() -> list[type[models.Model]]:
    return list(models_by_table().values())


@dataclass(frozen=True)
class ColumnSpec:
    """How one generator column maps onto a database column."""

    attname: str
    column: str
    kind: str  # int8 int4 int2 bool timestamptz numeric text jsonb inet
    scale: int = 0


def _kind_of(model_field: models.Field) -> str:
    target = model_field.target_field if model_field.is_relation else model_field
    internal = target.get_internal_type()
    kind = _KIND_BY_FIELD_TYPE.get(internal)
    if kind is None:
        raise TypeError(f"No synthetic loader support for {model_field!r} ({internal})")
    return kind


def column_specs(model: type[models.Model], table: Table) -> list[ColumnSpec]:
    """Check the generator's columns against the model and say how to write each one."""
    fields = {f.attname: f for f in model._meta.concrete_fields}
    missing = sorted(set(fields) - set(table.columns))
    unknown = sorted(set(table.columns) - set(fields))
    if missing or unknown:
        raise ValueError(
            f"Generator table {table.name!r} does not match {model.__name__}: "
            f"missing {missing or 'nothing'}, unknown {unknown or 'nothing'}"
        )
    specs = []
    for name in table.columns:
        f = fields[name]
        kind = _kind_of(f)
        scale = 0
        if kind == "numeric":
            scale = f.decimal_places
            if table.scales.get(name, 0) > scale:
                raise ValueError(f"{table.name}.{name} has more decimals than {model.__name__}.{name}")
        elif name in table.scales:
            raise ValueError(f"{table.name}.{name} is scaled but {model.__name__}.{name} is not a decimal")
        if table.is_null(name).any() and not f.null:
            raise ValueError(f"{table.name}.{name} has NULLs but {model.__name__}.{name} is NOT NULL")
        specs.append(ColumnSpec(name, f.column, kind, scale))
    return specs


def _prepare(table: Table) -> Table:
    """The one conversion the generator cannot do without Django: suppressions keep a keyed hash."""
    if table.name != "suppressions":
        return table
    columns = dict(table.columns)
    address = columns.pop("address")
    columns["address_hash"] = np.array(
        [email_digest(a.decode("utf-8")).encode() for a in address], dtype="S64"
    )
    return Table(table.name, columns, dict(table.nulls), dict(table.scales))


def tables_to_store(
    batch: Iterable[Table], model_by_table: dict[str, type[models.Model]]
) -> Iterator[tuple[type[models.Model], Table]]:
    """The batch's tables that hold rows, ready to store, each with the model it fills."""
    for table in batch:
        table = _prepare(table)
        if len(table):
            yield model_by_table[table.name], table


def as_bytes(values: np.ndarray) -> np.ndarray:
    """A text column as UTF-8 bytes (numpy `S`), whichever string dtype the generator used."""
    if values.dtype.kind == "U":
        values = np.strings.encode(values, "utf-8")
    if values.dtype.kind != "S":
        raise TypeError(f"Expected text, got {values.dtype}")
    return np.ascontiguousarray(values)
