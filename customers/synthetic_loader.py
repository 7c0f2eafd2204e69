"""Write the synthetic shop (`core.synthetic`) into the project's tables.

On PostgreSQL the rows go in with binary COPY, built straight from the numpy columns: a
million customers and ten million orders are some sixty million rows, and formatting them as
text in Python would cost more than PostgreSQL takes to store them. The whole load is one
transaction: foreign keys, unique constraints and secondary indexes are set aside and rebuilt
(and so re-validated) at the end, which is several times faster than maintaining them row by
row, and a failure leaves the database as it was. Generation runs in a second thread so numpy
and PostgreSQL work at the same time.

Elsewhere (SQLite for the demo) the same rows go through `bulk_create`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from io import BytesIO

import numpy as np
from django.apps import apps
from django.core.management.color import no_style
from django.db import connections, models, transaction

from core.hashing import email_digest
from core.synthetic import SyntheticConfig, SyntheticShop, Table

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

PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01, the zero of PostgreSQL's binary timestamps
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)


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


def synthetic_models() -> list[type[models.Model]]:
    return [apps.get_model(label) for label in TABLE_MODELS.values()]


# --- columns ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnSpec:
    """How one generator column maps onto a database column."""

    attname: str
    column: str
    kind: str  # int8 int4 int2 bool timestamptz numeric text jsonb inet
    scale: int = 0


_KIND_BY_DB_TYPE = (
    ("bigint", "int8"),
    ("integer", "int4"),
    ("smallint", "int2"),
    ("boolean", "bool"),
    ("timestamp with time zone", "timestamptz"),
    ("numeric", "numeric"),
    ("varchar", "text"),
    ("text", "text"),
    ("jsonb", "jsonb"),
    ("inet", "inet"),
)


def _kind_of(model_field: models.Field) -> str:
    """The storage kind, named after PostgreSQL types; SQLite only needs it to convert values."""
    target = model_field.target_field if model_field.is_relation else model_field
    internal = target.get_internal_type()
    kind = {
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
    }.get(internal)
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


# --- PostgreSQL binary COPY ---------------------------------------------------------------------
def _as_bytes(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "U":
        values = np.strings.encode(values, "utf-8")
    if values.dtype.kind != "S":
        raise TypeError(f"Expected text, got {values.dtype}")
    return np.ascontiguousarray(values)


def _field_payload(
    spec: ColumnSpec, values: np.ndarray, scale_in: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Bytes of one column in PostgreSQL's binary format: an (n, width) uint8 matrix and, for
    variable-width values, each row's length (None when every row uses the full width)."""
    n = len(values)
    kind = spec.kind
    if kind in ("int8", "int4", "int2"):
        dtype = {"int8": ">i8", "int4": ">i4", "int2": ">i2"}[kind]
        info = np.iinfo(dtype)
        ints = np.asarray(values, dtype=np.int64)
        if n and (ints.min() < info.min or ints.max() > info.max):
            raise OverflowError(f"{spec.attname} does not fit a PostgreSQL {kind}")
        return ints.astype(dtype).view(np.uint8).reshape(n, -1), None
    if kind == "bool":
        return np.asarray(values, dtype=bool).astype(np.uint8).reshape(n, 1), None
    if kind == "timestamptz":
        us = np.asarray(values).astype("datetime64[us]").view(np.int64) - PG_EPOCH_US
        return us.astype(">i8").view(np.uint8).reshape(n, 8), None
    if kind == "numeric":
        return _numeric_payload(
            np.asarray(values, dtype=np.int64) * 10 ** (spec.scale - scale_in), spec.scale
        ), None
    if kind == "inet":
        addresses = np.asarray(values, dtype=np.int64)
        out = np.empty((n, 8), dtype=np.uint8)
        out[:, :4] = (2, 32, 0, 4)  # AF_INET, 32-bit mask, not CIDR, 4 address bytes
        out[:, 4:] = addresses.astype(">u4").view(np.uint8).reshape(n, 4)
        return out, None
    text = _as_bytes(values)
    if kind == "jsonb":
        text = np.strings.add(b"\x01", text)  # jsonb's binary format: a version byte, then the text
    width = text.dtype.itemsize
    lengths = np.strings.str_len(text).astype(np.int64)
    matrix = text.view(np.uint8).reshape(n, width)
    return matrix, (None if n and lengths.min() == width else lengths)


def _numeric_payload(units: np.ndarray, scale: int) -> np.ndarray:
    """NUMERIC as four base-10000 digits with weight 2: fixed width, any value below 10**12.

    PostgreSQL strips the leading and trailing zero digits when it stores the value, so a fixed
    layout costs nothing and lets every row of a column share one shape.
    """
    if scale > 4:
        raise ValueError("numeric columns with more than 4 decimal places are not supported")
    n = len(units)
    magnitude = np.abs(units)
    whole, frac = np.divmod(magnitude, 10**scale)
    if n and whole.max() >= 10**12:
        raise OverflowError("numeric value too large for the synthetic loader")
    out = np.empty((n, 8), dtype=">i2")
    out[:, 0] = 4  # ndigits
    out[:, 1] = 2  # weight of the first digit: 10000**2
    out[:, 2] = np.where(units < 0, 0x4000, 0x0000)
    out[:, 3] = scale
    out[:, 4] = whole // 10**8
    out[:, 5] = (whole // 10**4) % 10**4
    out[:, 6] = whole % 10**4
    out[:, 7] = frac * 10 ** (4 - scale)
    return out.view(np.uint8).reshape(n, 16)


def encode_binary_rows(table: Table, specs: list[ColumnSpec]) -> bytes:
    """The tuples of a binary COPY stream (without header and trailer).

    Each row is laid out at fixed offsets in a padded matrix, then the padding of
    variable-width and NULL fields is dropped with one boolean mask: no Python loop per row.
    """
    n = len(table)
    parts = []
    for spec in specs:
        matrix, lengths = _field_payload(spec, table.columns[spec.attname], table.scales.get(spec.attname, 0))
        nulls = table.is_null(spec.attname)
        if nulls.any():
            lengths = np.full(n, matrix.shape[1], dtype=np.int64) if lengths is None else lengths.copy()
            lengths[nulls] = -1
        parts.append((matrix, lengths))
    width = 2 + sum(4 + m.shape[1] for m, _ in parts)
    rows = np.empty((n, width), dtype=np.uint8)
    rows[:, 0:2] = np.frombuffer(struct.pack("!h", len(specs)), dtype=np.uint8)
    keep = None
    at = 2
    for matrix, lengths in parts:
        w = matrix.shape[1]
        if lengths is None:
            rows[:, at : at + 4] = np.frombuffer(struct.pack("!i", w), dtype=np.uint8)
        else:
            rows[:, at : at + 4] = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        rows[:, at + 4 : at + 4 + w] = matrix
        if lengths is not None:
            if keep is None:
                keep = np.ones((n, width), dtype=bool)
            keep[:, at + 4 : at + 4 + w] = np.arange(w) < np.maximum(lengths, 0)[:, None]
        at += 4 + w
    return rows.tobytes() if keep is None else rows[keep].tobytes()


# --- the load ------------------------------------------------------------------------------------
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
            _load_postgresql(cursor, connection, shop, summary, on_batch, phase, maintenance_work_mem)
        else:
            _load_with_orm(shop, summary, on_batch, using)
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


# --- PostgreSQL -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _SetAside:
    drop: list[str]
    restore: list[tuple[str, str]]  # (index or constraint, statement)


def _set_aside_indexes(cursor, tables: list[str]) -> _SetAside:
    """Foreign keys, unique constraints and secondary indexes of the tables, with their exact definitions.

    Primary keys and check constraints stay (they are cheap). A unique constraint that a foreign
    key from some other table relies on stays too.
    """
    cursor.execute(
        """
        SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid), c.contype
        FROM pg_constraint c
        WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype IN ('f', 'u')
          AND NOT (c.contype = 'u' AND EXISTS (
                SELECT 1 FROM pg_constraint f
                WHERE f.contype = 'f' AND f.conindid = c.conindid AND NOT f.conrelid = ANY(%s::regclass[])))
        ORDER BY c.contype, 1, 2
        """,
        [tables, tables],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
        ORDER BY 1
        """,
        [tables],
    )
    indexes = cursor.fetchall()
    foreign = [c for c in constraints if c[3] == "f"]
    unique = [c for c in constraints if c[3] == "u"]
    drop = [f"ALTER TABLE {t} DROP CONSTRAINT {name}" for t, name, _, _ in foreign + unique]
    drop += [f"DROP INDEX {name}" for name, _ in indexes]
    restore = [(name, definition) for name, definition in indexes]
    restore += [
        (name, f"ALTER TABLE {t} ADD CONSTRAINT {name} {definition}")
        for t, name, definition, _ in unique + foreign
    ]
    return _SetAside(drop, restore)


def _load_postgresql(cursor, connection, shop, summary, on_batch, phase, maintenance_work_mem) -> None:
    model_by_table = {name: apps.get_model(label) for name, label in TABLE_MODELS.items()}
    db_tables = [m._meta.db_table for m in model_by_table.values()]
    cursor.execute("SELECT set_config('maintenance_work_mem', %s, true)", [maintenance_work_mem])
    aside = _set_aside_indexes(cursor, db_tables)
    for statement in aside.drop:
        cursor.execute(statement)
    raw = cursor.cursor  # psycopg2's cursor, for copy_expert
    total_batches = shop.config.batches
    work: queue.Queue = queue.Queue(maxsize=12)
    stop = threading.Event()
    produce_seconds = [0.0]

    def produce() -> None:
        try:
            specs: dict[str, list[ColumnSpec]] = {}
            batches = iter(shop.tables())
            batch_no = 0
            while True:
                tick = time.perf_counter()  # time spent waiting for the loader is not generation
                batch = next(batches, None)
                if batch is None:
                    break
                ready = []
                for table in batch:
                    table = _prepare(table)
                    if not len(table):
                        continue
                    model = model_by_table[table.name]
                    if table.name not in specs:
                        specs[table.name] = column_specs(model, table)
                    payload = encode_binary_rows(table, specs[table.name])
                    ready.append(("rows", model._meta.db_table, specs[table.name], payload, len(table)))
                produce_seconds[0] += time.perf_counter() - tick
                for item in ready:
                    _put(work, stop, item)
                _put(work, stop, ("batch", batch_no, None, None, 0))
                batch_no += 1
            _put(work, stop, ("done", None, None, None, 0))
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the loading thread, which re-raises
            with contextlib.suppress(_Stopped):
                _put(work, stop, ("error", exc, None, None, 0))

    producer = threading.Thread(target=produce, name="synthetic-generator", daemon=True)
    copy_seconds = 0.0
    producer.start()
    try:
        while True:
            what, a, specs, payload, count = work.get()
            if what == "error":
                raise a
            if what == "done":
                break
            if what == "batch":
                if a > 0 and on_batch:  # batch 0 is the catalogue
                    on_batch(a, total_batches)
                continue
            t = time.perf_counter()
            columns = ", ".join(connection.ops.quote_name(s.column) for s in specs)
            raw.copy_expert(
                f"COPY {connection.ops.quote_name(a)} ({columns}) FROM STDIN WITH (FORMAT binary)",
                BytesIO(COPY_HEADER + payload + COPY_TRAILER),
                size=1 << 20,
            )
            spent = time.perf_counter() - t
            copy_seconds += spent
            summary.copy_seconds[a] = summary.copy_seconds.get(a, 0.0) + spent
            summary.rows[a] = summary.rows.get(a, 0) + count
    finally:
        stop.set()
        producer.join()
    summary.seconds["generate"] = produce_seconds[0]
    summary.seconds["copy"] = copy_seconds
    phase(f"rebuilding {len(aside.restore)} indexes and constraints")
    t = time.perf_counter()
    for name, statement in aside.restore:
        tick = time.perf_counter()
        cursor.execute(statement)
        summary.rebuild_seconds[name] = time.perf_counter() - tick
    summary.seconds["indexes"] = time.perf_counter() - t


class _Stopped(Exception):
    """The loading thread gave up; the generator thread should stop too."""


def _put(work: queue.Queue, stop: threading.Event, item) -> None:
    while not stop.is_set():
        try:
            work.put(item, timeout=0.2)
            return
        except queue.Full:
            continue
    raise _Stopped


# --- other databases: bulk_create -----------------------------------------------------------------
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
        out = [v.decode("utf-8") for v in _as_bytes(values).tolist()]
    elif kind == "jsonb":
        out = [json.loads(v) for v in _as_bytes(values).tolist()]
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


def _load_with_orm(shop: SyntheticShop, summary: LoadSummary, on_batch, using: str) -> None:
    model_by_table = {name: apps.get_model(label) for name, label in TABLE_MODELS.items()}
    total_batches = shop.config.batches
    generate = store = 0.0
    with _explicit_timestamps(model_by_table.values()):
        tick = time.perf_counter()
        for batch_no, batch in enumerate(shop.tables()):
            for table in batch:
                table = _prepare(table)
                if not len(table):
                    continue
                model = model_by_table[table.name]
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
