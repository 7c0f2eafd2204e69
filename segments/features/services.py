"""Writes of the customer analytics: features and RFM, clusters, churn and lifetime value.

Each computation is one run: an `AnalyticsRun` row opened outside the transaction (so a crash
leaves a visible "running" row), the per-customer values written in bulk inside one transaction
(so a failed run leaves the previous values in place), then the run closed with its summary.

Per-customer aggregates and RFM quintiles are computed by the database: one SELECT with
`NTILE(5)` window functions over the per-customer aggregate of the orders. On PostgreSQL that
SELECT feeds `INSERT ... ON CONFLICT DO UPDATE` directly, so a million customers never pass
through Python; on SQLite (the demo) the rows come back and go out with `bulk_create`.
The models (k-means, BG/NBD, Gamma-Gamma) run in `segments.analytics` on arrays read in one query.

Orders: a *purchase* is an order that is neither cancelled nor returned and whose total is not
negative (a free order is still a visit); an order with a negative total is a refund (return
lines, or a credit note such as the retail data's cancelled invoices) and is netted into the
spend; a cancelled or wholly returned order with a positive total counts for nothing.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from customers.models import Customer, Order
from segments import rollups
from segments.analytics import (
    DEFAULT_GROUP_DESCRIPTIONS,
    DEFAULT_RFM_MAPPING,
    CustomerDataError,
    ModelFitError,
    RFMMapping,
    cluster_customers,
    customer_lifetime_value,
    fit_bgnbd,
    fit_gamma_gamma,
)
from segments.analytics.summary import days_per_unit
from segments.features.models import AnalyticsRun
from segments.models import CustomerFeatures

#: Features k-means looks at, and those log-scaled first because a few big customers would
#: otherwise get clusters of their own.
CLUSTER_FEATURES = ("recency_days", "frequency", "monetary", "average_order_value")
CLUSTER_LOG_FEATURES = ("frequency", "monetary", "average_order_value")

#: Advisory lock key of the analytics runs (PostgreSQL): two runs never overwrite each other.
_ADVISORY_LOCK = 0x5E6A_0001

_CHUNK = 5000


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def rfm_mapping() -> RFMMapping:
    """The mapping from scores to named groups: ``SEGMENTS_RFM_MAPPING`` or the default table.

    The setting is ``{"value_score": "frequency_monetary" | "frequency", "rules": [{"group": ...,
    "recency": [low, high], "value": [low, high]}, ...]}``; it is validated when read.
    """
    configured = _setting("SEGMENTS_RFM_MAPPING", None)
    if not configured:
        return DEFAULT_RFM_MAPPING
    return RFMMapping.from_table(
        configured["rules"], value_score=configured.get("value_score", "frequency_monetary")
    )


def group_descriptions(mapping: RFMMapping) -> dict[str, str]:
    configured = _setting("SEGMENTS_RFM_GROUP_DESCRIPTIONS", None) or {}
    return {
        group: configured.get(group, DEFAULT_GROUP_DESCRIPTIONS.get(group, "")) for group in mapping.groups
    }


# --- runs ------------------------------------------------------------------------------------------


def _open_run(kind: str, as_of: datetime) -> AnalyticsRun:
    return AnalyticsRun.objects.create(kind=kind, as_of=as_of, started_at=timezone.now())


def _json_safe(value):
    """JSON has no infinity or NaN (PostgreSQL refuses them): such a figure is stored as null."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _close_run(run: AnalyticsRun, *, state: str, customers: int = 0, summary=None, error: str = "") -> None:
    run.state = state
    run.customers = customers
    run.summary = _json_safe(summary or {})
    run.error = error
    run.finished_at = timezone.now()
    run.save(update_fields=["state", "customers", "summary", "error", "finished_at"])


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK])


def _as_of(as_of: datetime | None) -> datetime:
    value = as_of or timezone.now()
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


# --- SQL fragments ---------------------------------------------------------------------------------

_PURCHASE = "(o.status NOT IN ('cancelled', 'returned') AND o.total >= 0)"
_NET_SPEND = "(CASE WHEN o.status IN ('cancelled', 'returned') AND o.total > 0 THEN 0 ELSE o.total END)"


def _order_day(column: str) -> str:
    """The calendar day of a timestamp column in the shop's time zone, as a date."""
    if connection.vendor == "postgresql":
        return f"({column} AT TIME ZONE %(tz)s)::date"
    return f"date({column})"


def _days_between(later: str, earlier: str) -> str:
    """Whole days from the day of `earlier` to the day of `later` (both date expressions)."""
    if connection.vendor == "postgresql":
        return f"({later} - {earlier})"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def _as_of_day() -> str:
    if connection.vendor == "postgresql":
        return "(%(as_of)s::timestamptz AT TIME ZONE %(tz)s)::date"
    return "date(%(as_of)s)"


def _group_case(mapping: RFMMapping, params: dict[str, Any]) -> str:
    """The mapping's ordered rules as one SQL CASE: the first matching WHEN wins, as in the table."""
    value = "(f + m) / 2.0" if mapping.value_score == "frequency_monetary" else "f"
    whens = []
    for index, rule in enumerate(mapping.rules):
        params[f"g{index}"] = rule.group
        whens.append(
            f"WHEN r BETWEEN {int(rule.recency[0])} AND {int(rule.recency[1])} "
            f"AND {value} BETWEEN {float(rule.value[0])!r} AND {float(rule.value[1])!r} THEN %(g{index})s"
        )
    return "CASE WHEN r IS NULL THEN '' " + " ".join(whens) + " ELSE '' END"


def rfm_select_sql(*, mapping: RFMMapping, as_of: datetime) -> tuple[str, dict[str, Any]]:
    """One SELECT of every customer's features, RFM scores and group (columns of `FEATURE_COLUMNS`).

    Scores are ``NTILE(5)`` over the customers with at least one purchase, ties broken by
    customer id, exactly as `segments.analytics.quintile_scores` computes them; customers
    without a purchase get no scores and no group.
    """
    params: dict[str, Any] = {
        "as_of": connection.ops.adapt_datetimefield_value(as_of),
        "tz": settings.TIME_ZONE,
        "now": connection.ops.adapt_datetimefield_value(timezone.now()),
    }
    purchase_day = _order_day("last_order_at")
    sql = f"""
        WITH per_customer AS (
            SELECT o.customer_id,
                   COUNT(*) FILTER (WHERE {_PURCHASE}) AS frequency,
                   SUM({_NET_SPEND}) AS monetary,
                   MIN(o.placed_at) FILTER (WHERE {_PURCHASE}) AS first_order_at,
                   MAX(o.placed_at) FILTER (WHERE {_PURCHASE}) AS last_order_at
            FROM {Order._meta.db_table} o
            WHERE o.placed_at <= %(as_of)s
            GROUP BY o.customer_id
        ),
        base AS (
            SELECT c.id AS customer_id,
                   COALESCE(p.frequency, 0) AS frequency,
                   COALESCE(p.monetary, 0) AS monetary,
                   p.first_order_at, p.last_order_at,
                   {_days_between(_as_of_day(), purchase_day)} AS recency_days
            FROM {Customer._meta.db_table} c
            LEFT JOIN per_customer p ON p.customer_id = c.id
        ),
        scored AS (
            SELECT base.*,
                   CASE WHEN frequency > 0 THEN NTILE(5) OVER (
                       PARTITION BY frequency > 0 ORDER BY recency_days DESC, customer_id) END AS r,
                   CASE WHEN frequency > 0 THEN NTILE(5) OVER (
                       PARTITION BY frequency > 0 ORDER BY frequency, customer_id) END AS f,
                   CASE WHEN frequency > 0 THEN NTILE(5) OVER (
                       PARTITION BY frequency > 0 ORDER BY monetary, customer_id) END AS m
            FROM base
        )
        SELECT customer_id,
               CASE WHEN frequency > 0 THEN recency_days END AS recency_days,
               frequency,
               monetary,
               CASE WHEN frequency > 0 THEN ROUND(monetary / frequency, 2) END AS average_order_value,
               first_order_at,
               last_order_at,
               r AS rfm_r, f AS rfm_f, m AS rfm_m,
               {_group_case(mapping, params)} AS rfm_group,
               %(now)s AS computed_at
        FROM scored
    """  # noqa: S608
    return sql, params


FEATURE_COLUMNS = (
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "average_order_value",
    "first_order_at",
    "last_order_at",
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "rfm_group",
    "computed_at",
)


def hand_written_rfm_sql(*, as_of: datetime) -> tuple[str, dict[str, Any]]:
    """The baseline of the benchmark: the same RFM aggregate a person would write, not stored.

    Per-customer aggregates of the orders, NTILE(5) quintiles over them, counted per R x F x M
    cell: the work `compute_features` does, without writing anything or naming groups.
    """
    params = {"as_of": connection.ops.adapt_datetimefield_value(as_of), "tz": settings.TIME_ZONE}
    sql = f"""
        WITH per_customer AS (
            SELECT o.customer_id,
                   COUNT(*) FILTER (WHERE {_PURCHASE}) AS frequency,
                   SUM({_NET_SPEND}) AS monetary,
                   MAX(o.placed_at) FILTER (WHERE {_PURCHASE}) AS last_order_at
            FROM {Order._meta.db_table} o
            WHERE o.placed_at <= %(as_of)s
            GROUP BY o.customer_id
        ),
        scored AS (
            SELECT monetary,
                   NTILE(5) OVER (ORDER BY {_days_between(_as_of_day(), _order_day("last_order_at"))} DESC,
                                           customer_id) AS r,
                   NTILE(5) OVER (ORDER BY frequency, customer_id) AS f,
                   NTILE(5) OVER (ORDER BY monetary, customer_id) AS m
            FROM per_customer WHERE frequency > 0
        )
        SELECT r, f, m, COUNT(*), SUM(monetary) FROM scored GROUP BY r, f, m ORDER BY r, f, m
    """  # noqa: S608
    return sql, params


# --- features and RFM --------------------------------------------------------------------------------


def compute_features(*, as_of: datetime | None = None) -> AnalyticsRun:
    """Recompute every customer's order features, RFM scores and RFM group, in one transaction."""
    as_of = _as_of(as_of)
    run = _open_run(AnalyticsRun.Kind.FEATURES, as_of)
    try:
        mapping = rfm_mapping()
        with transaction.atomic():
            _lock()
            written, phases = _write_features(mapping=mapping, as_of=as_of)
            started = time.perf_counter()
            _sync_rollups()
            phases["rollups"] = time.perf_counter() - started
        phases.update(_vacuum_features())
        summary = {
            "phase_seconds": phases,
            "mapping": {"value_score": mapping.value_score, "rules": mapping.as_table()},
            "descriptions": group_descriptions(mapping),
        }
    except Exception as exc:
        _close_run(run, state=AnalyticsRun.State.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    _close_run(run, state=AnalyticsRun.State.SUCCEEDED, customers=written, summary=summary)
    return run


def _sync_rollups() -> None:
    """The rollup rows carry copies of some feature columns: update them in the same transaction."""
    with connection.cursor() as cursor:
        rollups.sync_features(cursor=cursor)


def _vacuum_features() -> dict[str, float]:
    """After a bulk rewrite, reclaim the old row versions at once (PostgreSQL, outside a transaction).

    Autovacuum gets there eventually, but on a busy server it can lag several runs behind; a
    compact table keeps the next night's UPDATE on the same pages (HOT updates, which skip the
    index writes for every row whose group did not change). ``SEGMENTS_FEATURES_VACUUM = False``
    leaves it to autovacuum.
    """
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or not _setting("SEGMENTS_FEATURES_VACUUM", True)
    ):
        return {}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {CustomerFeatures._meta.db_table}")
    return {"vacuum": time.perf_counter() - started}


def _write_features(*, mapping: RFMMapping, as_of: datetime) -> tuple[int, dict[str, float]]:
    """Compute and write; returns the rows written and the seconds of each phase."""
    select, params = rfm_select_sql(mapping=mapping, as_of=as_of)
    table = CustomerFeatures._meta.db_table
    columns = ", ".join(FEATURE_COLUMNS)
    if connection.vendor == "postgresql":
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in FEATURE_COLUMNS if c != "customer_id")
        with connection.cursor() as cursor:
            # Three window sorts over every customer: give them memory rather than temp files.
            cursor.execute("SET LOCAL work_mem = '256MB'")
            # The planner expects few rows and JIT-compiles for seconds to save milliseconds.
            cursor.execute("SET LOCAL jit = off")
            # PostgreSQL never runs the SELECT of an INSERT ... SELECT in parallel, but it does for
            # CREATE TABLE AS: aggregate the orders with every core into a temporary table (no
            # WAL), then upsert from it.
            cursor.execute("DROP TABLE IF EXISTS segment_features_new")
            started = time.perf_counter()
            cursor.execute(f"CREATE TEMP TABLE segment_features_new ON COMMIT DROP AS {select}", params)
            computed = time.perf_counter()
            # Rewrite only the rows whose values changed (a customer without a purchase keeps
            # the same row night after night), then add the customers new since the last run.
            # An UPDATE joined to the new values is cheaper than an upsert probing the key of
            # every row, and an unchanged row written again would be a dead tuple for nothing.
            values = [c for c in FEATURE_COLUMNS if c not in ("customer_id", "computed_at")]
            assignments = ", ".join(f"{c} = n.{c}" for c in FEATURE_COLUMNS if c != "customer_id")
            old = ", ".join(f"t.{c}" for c in values)
            new = ", ".join(f"n.{c}" for c in values)
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} FROM segment_features_new AS n "  # noqa: S608
                f"WHERE t.customer_id = n.customer_id AND ({old}) IS DISTINCT FROM ({new})"
            )
            changed = cursor.rowcount
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM segment_features_new AS n "  # noqa: S608
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE t.customer_id = n.customer_id) "
                f"ON CONFLICT (customer_id) DO UPDATE SET {updates}"
            )
            inserted = cursor.rowcount
            cursor.execute("SELECT COUNT(*) FROM segment_features_new")
            computed_rows = cursor.fetchone()[0]
            phases = {
                "compute": computed - started,
                "write": time.perf_counter() - computed,
                "rows_changed": changed,
                "rows_inserted": inserted,
            }
            cursor.execute("DROP TABLE segment_features_new")  # inside an outer transaction too
            return computed_rows, phases
    started = time.perf_counter()
    written = _write_features_portable(select=select, params=params)
    return written, {"compute_and_write": time.perf_counter() - started}


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(round(float(value), 2)))


def _datetime(value):
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if timezone.is_naive(parsed) else parsed


def _write_features_portable(*, select: str, params: dict[str, Any]) -> int:
    written = 0
    update_fields = [c for c in FEATURE_COLUMNS if c != "customer_id"]
    with connection.cursor() as cursor:
        cursor.execute(select, params)
        while rows := cursor.fetchmany(_CHUNK):
            objects = [
                CustomerFeatures(
                    customer_id=row[0],
                    recency_days=row[1],
                    frequency=row[2],
                    monetary=_decimal(row[3]),
                    average_order_value=_decimal(row[4]),
                    first_order_at=_datetime(row[5]),
                    last_order_at=_datetime(row[6]),
                    rfm_r=row[7],
                    rfm_f=row[8],
                    rfm_m=row[9],
                    rfm_group=row[10],
                    computed_at=_datetime(row[11]),
                )
                for row in rows
            ]
            CustomerFeatures.objects.bulk_create(
                objects,
                update_conflicts=True,
                unique_fields=["customer"],
                update_fields=update_fields,
                batch_size=500,
            )
            written += len(objects)
    return written


# --- bulk column writes ----------------------------------------------------------------------------------


def _write_columns(*, customer_ids: np.ndarray, values: dict[str, np.ndarray], clear_others: bool) -> None:
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
        return _decimal(value)
    return value


# --- clusters --------------------------------------------------------------------------------------------


def compute_clusters(*, k_range: tuple[int, int] | None = None, seed: int = 0) -> AnalyticsRun:
    """Cluster the customers with purchases on their stored features; write labels and profiles.

    Run after `compute_features`: it reads the features that run wrote.
    """
    k_range = k_range or tuple(_setting("SEGMENTS_CLUSTER_K_RANGE", (2, 8)))
    run = _open_run(AnalyticsRun.Kind.CLUSTERS, timezone.now())
    try:
        ids, data = _cluster_inputs()
        if ids.shape[0] == 0:
            raise ModelFitError("no customer has a purchase yet, so there is nothing to cluster")
        clusters = cluster_customers(
            data, CLUSTER_FEATURES, k_range=k_range, log_features=CLUSTER_LOG_FEATURES, seed=seed
        )
        with transaction.atomic():
            _lock()
            _write_columns(customer_ids=ids, values={"cluster": clusters.labels}, clear_others=True)
            _sync_rollups()
        _vacuum_features()  # fresh statistics for the new column values (see compute_clv)
        summary = {
            "k": clusters.k,
            "features": list(CLUSTER_FEATURES),
            "log_features": list(CLUSTER_LOG_FEATURES),
            "silhouette": {str(k): round(v, 4) for k, v in clusters.silhouette.items()},
            "profiles": [asdict(profile) for profile in clusters.profiles],
        }
    except (ModelFitError, CustomerDataError) as exc:
        _close_run(run, state=AnalyticsRun.State.FAILED, error=str(exc))
        return run
    except Exception as exc:
        _close_run(run, state=AnalyticsRun.State.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    _close_run(run, state=AnalyticsRun.State.SUCCEEDED, customers=int(ids.shape[0]), summary=summary)
    return run


def _cluster_inputs() -> tuple[np.ndarray, np.ndarray]:
    table = CustomerFeatures._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT customer_id, recency_days, frequency, monetary, average_order_value FROM {table} "  # noqa: S608
            f"WHERE frequency > 0 AND recency_days IS NOT NULL ORDER BY customer_id"  # noqa: S608
        )
        rows = cursor.fetchall()
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, len(CLUSTER_FEATURES)))
    array = np.array(rows, dtype=np.float64)
    ids = array[:, 0].astype(np.int64)
    data = array[:, 1:]
    # Net spend can be negative after refunds; for describing behaviour, "spent nothing" it is.
    data[:, 2:] = np.clip(data[:, 2:], 0, None)
    return ids, data


# --- churn and lifetime value ------------------------------------------------------------------------------


def purchase_summary_sql(*, as_of: datetime) -> tuple[str, dict[str, Any]]:
    """Per customer: repeat purchase days x, days to the last purchase t_x, days observed T, and
    the mean value of the repeat purchase days, computed in SQL exactly as
    `segments.analytics.build_customer_summary` does from the purchases (the tests check it)."""
    params = {"as_of": connection.ops.adapt_datetimefield_value(as_of), "tz": settings.TIME_ZONE}
    day = _order_day("o.placed_at")
    sql = f"""
        WITH days AS (
            SELECT o.customer_id, {day} AS day, SUM(o.total) AS value
            FROM {Order._meta.db_table} o
            WHERE {_PURCHASE} AND o.placed_at <= %(as_of)s
            GROUP BY o.customer_id, {day}
        ),
        per_customer AS (
            SELECT customer_id, COUNT(*) - 1 AS x, MIN(day) AS first_day, MAX(day) AS last_day,
                   SUM(value) AS total
            FROM days GROUP BY customer_id
        )
        SELECT p.customer_id, p.x,
               {_days_between("p.last_day", "p.first_day")},
               {_days_between(_as_of_day(), "p.first_day")},
               CASE WHEN p.x > 0 THEN CAST(p.total - d.value AS FLOAT) / p.x ELSE 0 END
        FROM per_customer p
        JOIN days d ON d.customer_id = p.customer_id AND d.day = p.first_day
        ORDER BY p.customer_id
    """  # noqa: S608
    if connection.vendor == "postgresql":
        sql = sql.replace("AS FLOAT", "AS double precision")
    return sql, params


def load_purchase_summary(*, as_of: datetime) -> dict[str, np.ndarray]:
    """The models' inputs per customer, times in days (see `purchase_summary_sql`)."""
    sql, params = purchase_summary_sql(as_of=as_of)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    array = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return {
        "customer_ids": array[:, 0].astype(np.int64),
        "frequency": array[:, 1],
        "recency_days": array[:, 2],
        "age_days": array[:, 3],
        "mean_repeat_spend": array[:, 4],
    }


def compute_clv(*, as_of: datetime | None = None) -> AnalyticsRun:
    """Fit BG/NBD and Gamma-Gamma on the order history up to `as_of` (now by default) and write
    every customer's P(alive), churn probability, expected purchases in 90 days and CLV.

    A base the models cannot be fitted on (no repeat purchases, too little history) gives a
    failed run with the reason, and the previous values stay.
    """
    as_of = _as_of(as_of)
    run = _open_run(AnalyticsRun.Kind.CLV, as_of)
    try:
        result = _fit_clv(as_of=as_of)
        with transaction.atomic():
            _lock()
            _write_columns(
                customer_ids=result.pop("customer_ids"), values=result.pop("values"), clear_others=True
            )
            _sync_rollups()
        # Fresh statistics for the columns just written: with those of the features run (churn
        # all NULL), the planner takes `churn_probability < 0.5` for one row and picks an index
        # scan over half the customers for every segment rule that tests it.
        _vacuum_features()
    except (ModelFitError, CustomerDataError) as exc:
        _close_run(run, state=AnalyticsRun.State.FAILED, error=str(exc))
        return run
    except Exception as exc:
        _close_run(run, state=AnalyticsRun.State.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    _close_run(
        run,
        state=AnalyticsRun.State.SUCCEEDED,
        customers=result["summary"]["customers"],
        summary=result["summary"],
    )
    return run


def _fit_clv(*, as_of: datetime) -> dict[str, Any]:
    time_unit = _setting("SEGMENTS_CLV_TIME_UNIT", "weeks")
    months = int(_setting("SEGMENTS_CLV_MONTHS", 12))
    discount = float(_setting("SEGMENTS_CLV_MONTHLY_DISCOUNT_RATE", 0.01))
    margin = float(_setting("SEGMENTS_CLV_MARGIN", 1.0))
    data = load_purchase_summary(as_of=as_of)
    if data["customer_ids"].shape[0] == 0:
        raise ModelFitError("no customer has a purchase yet, so there is nothing to fit")
    unit = days_per_unit(time_unit)
    x, zbar = data["frequency"], data["mean_repeat_spend"]
    t_x, big_t = data["recency_days"] / unit, data["age_days"] / unit
    purchases = fit_bgnbd(x, t_x, big_t)
    # Repeat customers whose repeat purchases were all free say nothing about spend: the spend
    # model is fitted without them (it needs positive amounts) and gives them the average.
    priced = np.where(zbar > 0, x, 0)
    spend = fit_gamma_gamma(priced, zbar)
    p_alive = purchases.probability_alive(x, t_x, big_t)
    expected_90d = purchases.expected_purchases(90.0 / unit, x, t_x, big_t)
    # The spend of the free repeat purchases counts as spend (none), through the customer's x.
    clv = customer_lifetime_value(
        purchases,
        spend,
        frequency=x,
        recency=t_x,
        age=big_t,
        mean_repeat_spend=zbar,
        time_unit=time_unit,
        months=months,
        monthly_discount_rate=discount,
        margin=margin,
    )
    clv = np.round(np.clip(clv, 0, 1e11), 2)
    summary = {
        "customers": int(x.shape[0]),
        "repeat_customers": int((x > 0).sum()),
        "time_unit": time_unit,
        "months": months,
        "monthly_discount_rate": discount,
        "margin": margin,
        "bgnbd": {
            "r": purchases.r,
            "alpha": purchases.alpha,
            "a": purchases.a,
            "b": purchases.b,
            "log_likelihood": purchases.log_likelihood,
            "iterations": purchases.iterations,
        },
        "gamma_gamma": {
            "p": spend.p,
            "q": spend.q,
            "v": spend.v,
            "log_likelihood": spend.log_likelihood,
            "customers": spend.customers,
            "population_mean_spend": spend.population_mean_spend,
        },
        "p_alive": _distribution(p_alive, bins=np.linspace(0, 1, 11)),
        "expected_purchases_90d": {"total": float(expected_90d.sum()), "mean": float(expected_90d.mean())},
        "clv": _distribution(clv, bins=_value_bins(clv)),
        "likely_churned": int((p_alive < 0.5).sum()),
    }
    return {
        "customer_ids": data["customer_ids"],
        "values": {
            "p_alive": p_alive,
            "churn_probability": 1.0 - p_alive,
            "expected_purchases_90d": expected_90d,
            "predicted_clv": clv,
        },
        "summary": summary,
    }


def _value_bins(values: np.ndarray, count: int = 12) -> np.ndarray:
    """Bin edges from 0 to the 99th percentile (rounded to a readable figure); the rest overflow."""
    top = float(np.quantile(values, 0.99)) if values.size else 1.0
    if top <= 0:
        top = 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    top = math.ceil(top / magnitude) * magnitude
    return np.linspace(0, top, count + 1)


def _distribution(values: np.ndarray, *, bins: Sequence[float]) -> dict[str, Any]:
    edges = np.asarray(bins, dtype=np.float64)
    counts, _ = np.histogram(np.clip(values, edges[0], None), bins=edges)
    overflow = int((values > edges[-1]).sum())
    quantiles = {f"p{q}": float(np.quantile(values, q / 100)) for q in (10, 25, 50, 75, 90, 99)}
    return {
        "mean": float(values.mean()),
        "total": float(values.sum()),
        **quantiles,
        "bins": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "overflow": overflow,
    }


# --- the whole pipeline -------------------------------------------------------------------------------


def run_pipeline(*, as_of: datetime | None = None) -> list[AnalyticsRun]:
    """Features, clusters, then churn and CLV, in order (the scheduled task chains the same steps)."""
    as_of = _as_of(as_of)
    return [compute_features(as_of=as_of), compute_clusters(), compute_clv(as_of=as_of)]
