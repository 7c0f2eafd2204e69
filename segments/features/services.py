"""Writes of the customer analytics: features and RFM, clusters, churn and lifetime value.

Each computation is one run: an `AnalyticsRun` row opened outside the transaction (so a crash
leaves a visible "running" row), the per-customer values written in bulk inside one transaction
(so a failed run leaves the previous values in place), then the run closed with its summary.

Per-customer aggregates and RFM quintiles are computed by the database (`segments.features.sql`:
from the per-customer rollups where they are exact, else from the orders). On PostgreSQL the
result goes into a temporary table and only the rows that changed are rewritten, so a million
customers never pass through Python; on SQLite (the demo) the rows come back and go out with
`bulk_create`.
The models (k-means, BG/NBD, Gamma-Gamma) run in `segments.analytics` on arrays read in one query.

Orders: a *purchase* is an order that is neither cancelled nor returned and whose total is not
negative (a free order is still a visit); an order with a negative total is a refund (return
lines, or a credit note such as the retail data's cancelled invoices) and is netted into the
spend; a cancelled or wholly returned order with a positive total counts for nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
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
from segments.features.columns import decimal_value, write_columns
from segments.features.models import AnalyticsRun
from segments.features.recency import scored_as_of
from segments.features.sql import (
    FEATURE_COLUMNS,
    base_params,
    hand_written_rfm_sql,
    purchase_summary_sql,
    recency_sql,
    rfm_select_sql,
)
from segments.models import CustomerFeatures, RollupState

__all__ = [  # the SQL builders stay importable from here (the benchmark and the tests use them)
    "FEATURE_COLUMNS",
    "hand_written_rfm_sql",
    "purchase_summary_sql",
    "rfm_select_sql",
]

#: Features k-means looks at, and those log-scaled first because a few big customers would
#: otherwise get clusters of their own.
CLUSTER_FEATURES = ("recency_days", "frequency", "monetary", "average_order_value")
CLUSTER_LOG_FEATURES = ("frequency", "monetary", "average_order_value")

#: Advisory lock key of the analytics runs (PostgreSQL): two runs never overwrite each other.
_ADVISORY_LOCK = 0x5E6A_0001

_CHUNK = 5000
#: Temporary table of the customers a features run wrote (PostgreSQL).
CHANGED = "segment_features_changed"


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


# --- features and RFM --------------------------------------------------------------------------------


def compute_features(*, as_of: datetime | None = None, use_rollups: bool | None = None) -> AnalyticsRun:
    """Recompute every customer's order features, RFM scores and RFM group, in one transaction.

    The purchases are read from the per-customer rollups when they give the same answer (see
    `segments.features.sql`; ``SEGMENTS_FEATURES_FROM_ROLLUPS = False`` or ``use_rollups=False``
    reads the orders every time); the run's summary says which (`source`).
    """
    as_of = _as_of(as_of)
    run = _open_run(AnalyticsRun.Kind.FEATURES, as_of)
    try:
        mapping = rfm_mapping()
        if use_rollups is None:
            use_rollups = _setting("SEGMENTS_FEATURES_FROM_ROLLUPS", True)
        with transaction.atomic():
            _lock()
            source = _purchase_source(as_of=as_of, use_rollups=use_rollups)
            written, phases = _write_features(mapping=mapping, as_of=as_of, source=source)
            started = time.perf_counter()
            _sync_rollups(changed=CHANGED if connection.vendor == "postgresql" else None)
            phases["rollups"] = time.perf_counter() - started
        phases.update(
            _vacuum_features(changed=phases.get("rows_changed", 0) + phases.get("rows_inserted", 0))
        )
        summary = {
            "source": source,
            "phase_seconds": phases,
            "mapping": {"value_score": mapping.value_score, "rules": mapping.as_table()},
            "descriptions": group_descriptions(mapping),
        }
    except Exception as exc:
        _close_run(run, state=AnalyticsRun.State.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    _close_run(run, state=AnalyticsRun.State.SUCCEEDED, customers=written, summary=summary)
    return run


def _sync_rollups(changed: str | None = None) -> None:
    """The rollup rows carry copies of some feature columns: update them in the same transaction
    (only for the customers in the temporary table `changed`, when given; it is dropped after)."""
    with connection.cursor() as cursor:
        rollups.sync_features(cursor=cursor, changed=changed)
        if changed:
            cursor.execute(f"DROP TABLE {changed}")  # inside an outer transaction too


def _purchase_source(*, as_of: datetime, use_rollups: bool) -> str:
    """ "rollups" when the rollups hold every purchase up to `as_of` and nothing after it, else
    "orders". Takes the rollups' writer lock for the rest of the transaction: no rebuild swaps the
    table and no drain rewrites rows between this check and the features' SELECT."""
    if not (use_rollups and rollups.enabled()):
        return "orders"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(rollups.LOCK))
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {RollupState._meta.db_table})")  # noqa: S608
        built = cursor.fetchone()[0]
        # An order dated after as_of is in its customer's rollup but not in the answer (a run
        # for a past date, or orders dated ahead): read the orders then.
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {Order._meta.db_table} WHERE placed_at > %s)",  # noqa: S608
            [as_of],
        )
        later = cursor.fetchone()[0]
    return "rollups" if built and not later else "orders"


#: Below this share of the table rewritten, the vacuum after a run is left to autovacuum.
_VACUUM_SHARE = 0.05


def _vacuum_features(changed: int | None = None) -> dict[str, float]:
    """After a bulk rewrite, reclaim the old row versions at once (PostgreSQL, outside a transaction).

    Autovacuum gets there eventually, but on a busy server it can lag several runs behind; a
    compact table keeps the next night's UPDATE on the same pages (HOT updates, which skip the
    index writes for every row whose group did not change). A run that rewrote few rows (`changed`,
    under 5 % of the table) leaves them to autovacuum. ``SEGMENTS_FEATURES_VACUUM = False`` leaves
    every run to autovacuum.
    """
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or not _setting("SEGMENTS_FEATURES_VACUUM", True)
    ):
        return {}
    if changed is not None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [CustomerFeatures._meta.db_table]
            )
            rows = max(float(cursor.fetchone()[0] or 0), 1.0)
        if changed < _VACUUM_SHARE * rows:
            return {}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {CustomerFeatures._meta.db_table}")
    return {"vacuum": time.perf_counter() - started}


def _write_features(*, mapping: RFMMapping, as_of: datetime, source: str) -> tuple[int, dict[str, float]]:
    """Compute and write; returns the rows written and the seconds of each phase."""
    select, params = rfm_select_sql(mapping=mapping, as_of=as_of, source=source)
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
            # CREATE TABLE AS: compute with every core into a temporary table (no WAL) only the
            # rows that differ from the stored ones (a customer without a purchase keeps the same
            # row night after night; recency is not stored, so time passing changes nothing but
            # the scores it moves) and the customers new since the last run, then write those.
            # An unchanged row written again would be a dead tuple for nothing.
            values = [c for c in FEATURE_COLUMNS if c not in ("customer_id", "computed_at")]
            assignments = ", ".join(f"{c} = n.{c}" for c in FEATURE_COLUMNS if c != "customer_id")
            old = ", ".join(f"t.{c}" for c in values)
            new = ", ".join(f"n.{c}" for c in values)
            cursor.execute("DROP TABLE IF EXISTS segment_features_new")
            started = time.perf_counter()
            cursor.execute(
                "CREATE TEMP TABLE segment_features_new ON COMMIT DROP AS "  # noqa: S608
                f"SELECT n.*, t.customer_id IS NULL AS is_new FROM ({select}) n "
                f"LEFT JOIN {table} t ON t.customer_id = n.customer_id "
                f"WHERE t.customer_id IS NULL OR ({old}) IS DISTINCT FROM ({new})",
                params,
            )
            computed = time.perf_counter()
            # The customers written are kept (CHANGED) for the copy of their group into the rollups.
            cursor.execute(f"DROP TABLE IF EXISTS {CHANGED}")
            cursor.execute(
                f"CREATE TEMP TABLE {CHANGED} ON COMMIT DROP AS SELECT customer_id FROM segment_features_new"  # noqa: S608
            )
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} FROM segment_features_new AS n "  # noqa: S608
                f"WHERE t.customer_id = n.customer_id AND NOT n.is_new"
            )
            changed = cursor.rowcount
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM segment_features_new AS n "  # noqa: S608
                f"WHERE n.is_new ON CONFLICT (customer_id) DO UPDATE SET {updates}"
            )
            inserted = cursor.rowcount
            cursor.execute(f"SELECT COUNT(*) FROM {Customer._meta.db_table}")  # noqa: S608
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
                    frequency=row[1],
                    monetary=decimal_value(row[2]),
                    average_order_value=decimal_value(row[3]),
                    first_order_at=_datetime(row[4]),
                    last_order_at=_datetime(row[5]),
                    rfm_r=row[6],
                    rfm_f=row[7],
                    rfm_m=row[8],
                    rfm_group=row[9],
                    computed_at=_datetime(row[10]),
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
            write_columns(customer_ids=ids, values={"cluster": clusters.labels}, clear_others=True)
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
    """CLUSTER_FEATURES of the customers with a purchase, recency counted to the features run's day."""
    table = CustomerFeatures._meta.db_table
    as_of = scored_as_of()
    if as_of is None:
        return np.zeros(0, dtype=np.int64), np.zeros((0, len(CLUSTER_FEATURES)))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT customer_id, {recency_sql('last_order_at')}, frequency, monetary, average_order_value "  # noqa: S608
            f"FROM {table} WHERE frequency > 0 AND last_order_at IS NOT NULL ORDER BY customer_id",
            base_params(as_of),
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
            write_columns(
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
