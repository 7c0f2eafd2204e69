"""`load_synthetic`: one transaction that refuses (or clears) tables holding data, stores the shop
with the database's writer, resets the sequences and, on PostgreSQL, analyzes the tables."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.management.color import no_style
from django.db import connections, transaction

from core.synthetic import SyntheticConfig, SyntheticShop
from customers.synthetic_loader.orm import load_with_orm
from customers.synthetic_loader.postgresql import load_postgresql
from customers.synthetic_loader.schema import synthetic_models


class ExistingDataError(RuntimeError):
    """The target tables already hold rows and the caller did not ask to clear them."""

    def __init__(self, tables: dict[str, int]) -> None:
        self.tables = tables
        listing = ", ".join(
            f"{name} ({'at least ' if rows >= 1000 else ''}{rows:,} row{'s' if rows > 1 else ''})"
            for name, rows in tables.items()
        )
        super().__init__(
            f"These tables already hold data: {listing}. Synthetic data is only loaded into empty tables so it "
            "never mixes with real customers. Re-run with --truncate to delete every row of the synthetic "
            "tables (and of the tables that reference them) first."
        )


@dataclass
class LoadSummary:
    rows: dict[str, int] = field(default_factory=dict)  # by database table
    seconds: dict[str, float] = field(default_factory=dict)  # by phase
    emptied: list[str] = field(default_factory=list)  # tables --truncate found with rows
    vendor: str = ""
    copy_seconds: dict[str, float] = field(default_factory=dict)  # by database table (PostgreSQL)
    rebuild_seconds: dict[str, float] = field(default_factory=dict)  # by index or constraint (PostgreSQL)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def load_synthetic(
    *,
    config: SyntheticConfig,
    truncate: bool = False,
    using: str = "default",
    on_batch: Callable[[int, int], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    maintenance_work_mem: str = "512MB",
) -> LoadSummary:
    """Generate the shop described by `config` and store it, all or nothing.

    `on_batch(done, total)` is called after each batch of customers, `on_phase(text)` when a
    slow step starts, so a command can show progress without this module printing anything.
    """
    connection = connections[using]
    shop = SyntheticShop(config)
    summary = LoadSummary(vendor=connection.vendor)
    model_list = synthetic_models()
    tables = [m._meta.db_table for m in model_list]
    phase = on_phase or (lambda text: None)
    started = time.perf_counter()
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        holding = _tables_with_rows(cursor, connection, tables)
        if holding and not truncate:
            raise ExistingDataError(holding)
        if truncate:
            phase("clearing the synthetic tables")
            summary.emptied = _clear(cursor, connection, tables)
        summary.seconds["clear"] = time.perf_counter() - started
        if connection.vendor == "postgresql":
            load_postgresql(cursor, connection, shop, summary, on_batch, phase, maintenance_work_mem)
        else:
            load_with_orm(shop, summary, on_batch, using)
        for statement in connection.ops.sequence_reset_sql(no_style(), model_list):
            cursor.execute(statement)
    if connection.vendor == "postgresql":
        phase("analyzing")
        t = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE " + ", ".join(connection.ops.quote_name(t) for t in tables))
        summary.seconds["analyze"] = time.perf_counter() - t
    summary.seconds["total"] = time.perf_counter() - started
    return summary


def _tables_with_rows(cursor, connection, tables: list[str]) -> dict[str, int]:
    holding = {}
    for name in tables:
        quoted = connection.ops.quote_name(name)
        cursor.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {quoted} LIMIT 1000) AS sample")  # noqa: S608
        rows = cursor.fetchone()[0]
        if rows:
            holding[name] = rows
    return holding


def _dependents(cursor, connection, tables: list[str]) -> list[str]:
    """Every table whose foreign keys lead, directly or not, to one of `tables`."""
    referenced_by: dict[str, set[str]] = {}
    for name in connection.introspection.table_names(cursor):
        for _column, (_target_column, target) in connection.introspection.get_relations(cursor, name).items():
            referenced_by.setdefault(target, set()).add(name)
    found, todo = set(tables), list(tables)
    while todo:
        for child in referenced_by.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found - set(tables))


def _clear(cursor, connection, tables: list[str]) -> list[str]:
    """Empty the synthetic tables and whatever references them; return the ones that held rows."""
    everything = tables + _dependents(cursor, connection, tables)
    emptied = list(_tables_with_rows(cursor, connection, everything))
    quoted = [connection.ops.quote_name(t) for t in everything]
    if connection.vendor == "postgresql":
        cursor.execute(f"TRUNCATE {', '.join(quoted)} RESTART IDENTITY")
    else:
        for name in reversed(quoted):  # foreign keys are checked at commit on SQLite: order is cosmetic
            cursor.execute(f"DELETE FROM {name}")  # noqa: S608 - names come from the schema
    return emptied
