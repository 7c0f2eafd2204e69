"""The load on databases other than PostgreSQL (SQLite for the demo): the same rows through `bulk_create`."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import time
from datetime import UTC
from decimal import Decimal
from typing import TYPE_CHECKING

from core.synthetic import Table
from customers.synthetic_loader.schema import (
    ColumnSpec,
    as_bytes,
    column_specs,
    models_by_table,
    tables_to_store,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.synthetic import SyntheticShop
    from customers.synthetic_loader.load import LoadSummary


def python_values(spec: ColumnSpec, table: Table) -> list:
    """A column as Python values for the ORM, NULLs as None."""
    values = table.columns[spec.attname]
    kind = spec.kind
    if kind == "timestamptz":
        out = [v.replace(tzinfo=UTC) for v in values.astype("datetime64[us]").tolist()]
    elif kind == "numeric":
        scale = table.scales.get(spec.attname, 0)
        out = [Decimal(v).scaleb(-scale) for v in values.tolist()]
    elif kind == "text":
        out = [v.decode("utf-8") for v in as_bytes(values).tolist()]
    elif kind == "jsonb":
        out = [json.loads(v) for v in as_bytes(values).tolist()]
    elif kind == "inet":
        out = [str(ipaddress.IPv4Address(v)) for v in values.tolist()]
    elif kind == "bool":
        out = [bool(v) for v in values.tolist()]
    else:
        out = [int(v) for v in values.tolist()]
    nulls = table.is_null(spec.attname)
    if nulls.any():
        out = [None if null else v for v, null in zip(out, nulls.tolist(), strict=True)]
    return out


@contextlib.contextmanager
def _explicit_timestamps(model_list):
    """bulk_create stamps auto_now/auto_now_add fields with the current time; keep the generated ones."""
    saved = []
    for model in model_list:
        for f in model._meta.concrete_fields:
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                saved.append((f, f.auto_now, f.auto_now_add))
                f.auto_now = f.auto_now_add = False
    try:
        yield
    finally:
        for f, auto_now, auto_now_add in saved:
            f.auto_now, f.auto_now_add = auto_now, auto_now_add


def load_with_orm(
    shop: SyntheticShop, summary: LoadSummary, on_batch: Callable[[int, int], None] | None, using: str
) -> None:
    model_by_table = models_by_table()
    total_batches = shop.config.batches
    generate = store = 0.0
    with _explicit_timestamps(model_by_table.values()):
        tick = time.perf_counter()
        for batch_no, batch in enumerate(shop.tables()):
            for model, table in tables_to_store(batch, model_by_table):
                specs = column_specs(model, table)
                columns = [python_values(spec, table) for spec in specs]
                names = [spec.attname for spec in specs]
                objects = [model(**dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]
                generate += time.perf_counter() - tick
                tick = time.perf_counter()
                model.objects.using(using).bulk_create(objects, batch_size=500)
                store += time.perf_counter() - tick
                tick = time.perf_counter()
                db_table = model._meta.db_table
                summary.rows[db_table] = summary.rows.get(db_table, 0) + len(table)
            if batch_no > 0 and on_batch:
                on_batch(batch_no, total_batches)
    summary.seconds["generate"] = generate
    summary.seconds["store"] = store
