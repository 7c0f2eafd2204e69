"""RFM + order features written for every customer, against one hand-written SQL query.

The baseline is what a person would write to get the same RFM aggregate: per-customer aggregates
of the orders, NTILE(5) quintiles over them, counted per R x F x M cell, stored nowhere
(`services.hand_written_rfm_sql`). The measured path is `services.compute_features`: the same
aggregate plus every customer's features, scores and named group written into
`segments_customerfeatures` (INSERT ... ON CONFLICT DO UPDATE), with its run record. The baseline
runs before and after, and the ratio uses the faster of the two (the first also warms the cache).
Clusters and churn/CLV are timed in the same run when asked (`--models`); they are not part of
the target.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_1m \\
        python -m benchmarks.segments_rfm [--models] [--as-of 2026-01-01T00:00:00+00:00]

Targets (issue 5): features <= 1.5 x the hand-written query; RFM + features + refresh of 20
segments <= 60 s (the refresh is measured by the segment benchmark).
It writes into the database it is pointed at (the analytics run table is created if missing);
point it at a synthetic database, never at one someone uses.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timedelta

from benchmarks.common import database_info, emit, machine_info, peak_memory_mb, setup_django, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", default=None, help="end of the order history (default: the next night)")
    parser.add_argument("--models", action="store_true", help="also time clusters and churn/CLV")
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    setup_django()

    from django.core.management import call_command
    from django.db import connection

    from customers.models import Customer, Order
    from segments.features import services
    from segments.features.models import AnalyticsRun
    from segments.models import CustomerFeatures

    if connection.vendor != "postgresql":
        raise SystemExit("this benchmark needs PostgreSQL (DATABASE_URL)")
    call_command("migrate", "segment_features", verbosity=0)
    if args.as_of:
        as_of = datetime.fromisoformat(args.as_of)
    else:
        # The next night: one day after the later of the last order and the last run, so every
        # customer's recency changes and each run rewrites what a nightly run rewrites.
        last_run = AnalyticsRun.objects.filter(kind="features", state="succeeded").order_by("-as_of").first()
        latest = Order.objects.latest("placed_at").placed_at
        as_of = max(latest, last_run.as_of if last_run else latest) + timedelta(days=1)

    def baseline() -> float:
        sql, params = services.hand_written_rfm_sql(as_of=as_of)
        with timed("baseline") as timing, connection.cursor() as cursor:
            cursor.execute("SET work_mem = '256MB'")  # the same memory the service gives its sorts
            cursor.execute(sql, params)
            cells = cursor.fetchall()
            cursor.execute("RESET work_mem")
        assert len(cells) > 0
        return timing.seconds

    existing = CustomerFeatures.objects.count()
    first_baseline = baseline()
    with timed("features") as features:
        run = services.compute_features(as_of=as_of)
    second_baseline = baseline()
    best = min(first_baseline, second_baseline)
    result = {
        "benchmark": "segments_rfm",
        "customers": Customer.all_objects.count()
        if hasattr(Customer, "all_objects")
        else Customer.objects.count(),
        "orders": Order.objects.count(),
        "as_of": as_of.isoformat(),
        "feature_rows_before": existing,
        "path": "update" if existing else "insert",
        "hand_written_query_seconds": [round(first_baseline, 3), round(second_baseline, 3)],
        "features_seconds": round(features.seconds, 3),
        "customers_written": run.customers,
        "features_phases": {k: round(v, 3) for k, v in run.summary.get("phase_seconds", {}).items()},
        "ratio_to_hand_written": round(features.seconds / best, 3),
        "target_ratio": 1.5,
    }
    if args.models:
        with timed("clusters") as clusters:
            cluster_run = services.compute_clusters()
        with timed("clv") as clv:
            clv_run = services.compute_clv(as_of=as_of)
        result["clusters"] = {
            "seconds": round(clusters.seconds, 3),
            "state": cluster_run.state,
            "k": cluster_run.summary.get("k"),
            "error": cluster_run.error,
        }
        result["clv"] = {
            "seconds": round(clv.seconds, 3),
            "state": clv_run.state,
            "bgnbd": clv_run.summary.get("bgnbd"),
            "error": clv_run.error,
        }
    result.update(
        {"peak_memory_mb": peak_memory_mb(), "machine": machine_info(), "database": database_info()}
    )
    emit(result, name="segments_rfm")


if __name__ == "__main__":
    main()
