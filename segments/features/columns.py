# ruff: noqa: S608 - the SQL below interpolates only table and column names of the features model.
"""Bulk writes of per-customer columns of `CustomerFeatures` (cluster labels, churn and CLV):
only the rows whose values changed are rewritten; optionally NULLed for everyone else."""

from __future__ import annotations

import io
import math
from decimal import Decimal

import numpy as np
from django.db import connection

from segments.models import CustomerFeatures

_CHUNK = 5000


def decimal_value(value) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(round(float(value), 2)))


def write_columns(*, customer_ids: np.ndarray, values: dict[str, np.ndarray], clear_others: bool) -> None:
    """Set columns of `CustomerFeatures` per customer id; with `clear_others`, NULL them elsewhere.

    PostgreSQL: the values are copied (COPY) into a temporary table, then one
    ``UPDATE ... FROM`` joins it and rewrites only the rows whose values changed; elsewhere
    ``bulk_update`` in chunks.
    """
    table = CustomerFeatures._meta.db_table
    names = list(values)
    ids = [int(i) for i in customer_ids]
    if connection.vendor == "postgresql":
        _write_columns_postgresql(table=table, ids=ids, values=values, clear_others=clear_others)
        return
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        objects = []
        for offset, customer_id in enumerate(chunk):
            obj = CustomerFeatures(customer_id=customer_id)
            for name in names:
                setattr(obj, name, _model_value(name, values[name][start + offset]))
            objects.append(obj)
        CustomerFeatures.objects.bulk_update(objects, names, batch_size=500)
    if clear_others:
        stale = sorted(
            set(
                CustomerFeatures.objects.filter(**{f"{names[0]}__isnull": False}).values_list(
                    "customer_id", flat=True
                )
            )
            - set(ids)
        )
        for start in range(0, len(stale), _CHUNK):
            CustomerFeatures.objects.filter(customer_id__in=stale[start : start + _CHUNK]).update(
                **dict.fromkeys(names)
            )


def _copy_text(value) -> str:
    value = _plain(value)
    return "\\N" if value is None else repr(value) if isinstance(value, float) else str(value)


def _write_columns_postgresql(
    *, table: str, ids: list[int], values: dict[str, np.ndarray], clear_others: bool
) -> None:
    names = list(values)
    columns = ", ".join(f"{n} {_pg_type(n)}" for n in names)
    buffer = io.StringIO()
    for index, customer_id in enumerate(ids):
        buffer.write("\t".join([str(customer_id), *(_copy_text(values[n][index]) for n in names)]) + "\n")
    buffer.seek(0)
    assignments = ", ".join(f"{n} = v.{n}" for n in names)
    changed = " OR ".join(f"t.{n} IS DISTINCT FROM v.{n}" for n in names)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS segment_features_columns")
        cursor.execute(
            f"CREATE TEMP TABLE segment_features_columns (customer_id bigint PRIMARY KEY, {columns}) ON COMMIT DROP"
        )
        cursor.cursor.copy_expert(
            f"COPY segment_features_columns (customer_id, {', '.join(names)}) FROM STDIN", buffer
        )
        cursor.execute("ANALYZE segment_features_columns")
        cursor.execute(
            f"UPDATE {table} AS t SET {assignments} FROM segment_features_columns AS v "  # noqa: S608
            f"WHERE t.customer_id = v.customer_id AND ({changed})"
        )
        if clear_others:
            cursor.execute(
                f"UPDATE {table} AS t SET {', '.join(f'{n} = NULL' for n in names)} "  # noqa: S608
                f"WHERE t.{names[0]} IS NOT NULL AND NOT EXISTS ("
                f"SELECT 1 FROM segment_features_columns AS v WHERE v.customer_id = t.customer_id)"
            )
        cursor.execute("DROP TABLE segment_features_columns")


def _pg_type(name: str) -> str:
    field = CustomerFeatures._meta.get_field(name)
    internal = field.get_internal_type()
    if internal == "DecimalField":
        return f"numeric({field.max_digits},{field.decimal_places})"
    if internal == "FloatField":
        return "double precision"
    return "integer"


def _plain(value):
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _model_value(name: str, value):
    value = _plain(value)
    if value is not None and CustomerFeatures._meta.get_field(name).get_internal_type() == "DecimalField":
        return decimal_value(value)
    return value
