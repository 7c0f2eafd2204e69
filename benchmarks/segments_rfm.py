"""The nightly customer analytics: RFM + features for every customer (and, with --segments, the
full refresh of 20 dynamic segments after it), against one hand-written SQL query.

The baseline is what a person would write to get the same RFM aggregate: per-customer aggregates
of the orders, NTILE(5) quintiles over them, counted per R x F x M cell, stored nowhere
(`services.hand_written_rfm_sql`). The measured path is `services.compute_features`: the same
aggregate plus every customer's features, scores and named group brought up to date in
`segments_customerfeatures`, with its run record. The baseline runs before and after, and the
ratio uses the faster of the two (the first also warms the cache).

Each run is one night of a shop: `--new-orders` orders (default 10,000) arrive during the day
before `as_of` through the ingest's bookkeeping (their customers are noted as touched, as the API
and imports do) and stay; `as_of` is the next night. The features run reads the purchase
aggregates from the per-customer rollups for everyone but the touched customers, whose orders it
reads (`source` in the output; `--orders-only` forces the raw path for comparison). After the
timed part the touched customers' rollups are brought up to date, as the drain would.

`--segments` also times the full refresh of the 20 `bench-seg-*` segments of
`benchmarks.segments_refresh` (created and refreshed once, untimed, if missing) right after the
features, as the nightly schedule runs them: `nightly_seconds` is RFM + features + refresh. The
rollups are rebuilt as of the night first when they are older than their rebuild interval
(timed and reported apart: the rebuild runs every 6 hours, not per night). Clusters and
churn/CLV are timed when asked (`--models`); they are not part of the targets.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_1m \\
        python -m benchmarks.segments_rfm [--segments] [--models] [--new-orders 10000]

Targets (issue 5): features <= 1.5 x the hand-written query; RFM + features + refresh of 20
segments <= 60 s. It writes into the database it is pointed at; point it at a synthetic
database, never at one someone uses.
"""

from __future__ import annotations

import argparse
import os
import random
from datetime import datetime, timedelta

from benchmarks.common import database_info, emit, machine_info, peak_memory_mb, setup_django, timed


def add_orders(*, count: int, as_of: datetime, seed: int) -> list[int]:
    """`count` orders for random customers during the day before `as_of`, noted as touched the way
    the ingest does; returns their customers."""
    from django.db import connection

    from customers.models import Order
    from segments.drain import record_touched

    rng = random.Random(seed)
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM customers_customer")
        low, high = cursor.fetchone()
    statuses = ["paid"] * 17 + ["fulfilled"] * 2 + ["returned"]
    stamp = f"{as_of:%Y%m%d%H%M%S}"
    orders = [
        Order(
            external_id=f"bench-night-{stamp}-{index}",
            customer_id=rng.randint(low, high),
            status=rng.choice(statuses),
            placed_at=as_of - timedelta(seconds=rng.randint(60, 86_400)),
            total=f"{rng.uniform(5, 250):.2f}",
        )
        for index in range(count)
    ]
    created = Order.objects.bulk_create(orders, batch_size=5000)
    record_touched(order_ids=[order.pk for order in created])
    return sorted({order.customer_id for order in orders})


def settle_touched(customer_ids: list[int]) -> None:
    """What the drain does for these customers' rollups (their segments are refreshed in full)."""
    from segments import rollups
    from segments.models import TouchedCustomer

    rollups.refresh_rollups(customer_ids=customer_ids)
    TouchedCustomer.objects.filter(customer_id__in=customer_ids).delete()


def prepare_segments(now: datetime) -> dict:
    """The 20 benchmark segments, refreshed once (untimed) if they were missing."""
    from benchmarks.segments_refresh import PREFIX, create_segments, full_refresh
    from segments.models import Segment

    existing = list(Segment.objects.filter(name__startswith=PREFIX).values_list("pk", flat=True))
    if len(existing) == 20:
        return {"ids": existing, "created": False}
    ids = [segment.pk for segment in create_segments()]
    full_refresh(ids, now)
    return {"ids": ids, "created": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", default=None, help="the night (default: a day after the last night)")
    parser.add_argument("--new-orders", type=int, default=10_000, help="orders arriving during the day")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--segments", action="store_true", help="also refresh the 20 benchmark segments")
    parser.add_argument("--orders-only", action="store_true", help="features from the orders, not rollups")
    parser.add_argument("--models", action="store_true", help="also time clusters and churn/CLV")
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    setup_django()

    from django.core.management import call_command
    from django.db import connection

    from customers.models import Customer, Order
    from segments import rollups
    from segments.features import services
    from segments.features.models import AnalyticsRun
    from segments.models import CustomerFeatures, RollupState

    if connection.vendor != "postgresql":
        raise SystemExit("this benchmark needs PostgreSQL (DATABASE_URL)")
    call_command("migrate", verbosity=0)
    if args.as_of:
        as_of = datetime.fromisoformat(args.as_of)
    else:
        # The next night: one day after the later of the last order and the last run.
        last_run = AnalyticsRun.objects.filter(kind="features", state="succeeded").order_by("-as_of").first()
        latest = Order.objects.latest("placed_at").placed_at
        as_of = max(latest, last_run.as_of if last_run else latest) + timedelta(days=1)
    result: dict = {"benchmark": "segments_rfm", "as_of": as_of.isoformat()}

    # The rollups as the schedule keeps them: rebuilt every REBUILD_HOURS, so at most that old.
    state = RollupState.objects.filter(pk=1).first()
    age = as_of - state.as_of if state else None
    if age is None or not timedelta(0) <= age < timedelta(hours=rollups.REBUILD_HOURS):
        rebuilt = rollups.rebuild_rollups(as_of=as_of - timedelta(hours=rollups.REBUILD_HOURS // 2))
        result["rollup_rebuild_seconds"] = rebuilt.seconds  # timed apart: every 6 h, not per night
    segments = prepare_segments(as_of) if args.segments else None
    touched = add_orders(count=args.new_orders, as_of=as_of, seed=args.seed) if args.new_orders else []

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
        run = services.compute_features(as_of=as_of, use_rollups=not args.orders_only)
    refresh = None
    if segments is not None:
        from benchmarks.segments_refresh import full_refresh

        refresh = full_refresh(segments["ids"], as_of)
    second_baseline = baseline()
    settle_touched(touched)
    best = min(first_baseline, second_baseline)
    result.update(
        {
            "customers": Customer._base_manager.count(),
            "orders": Order.objects.count(),
            "new_orders": args.new_orders,
            "touched_customers": len(touched),
            "feature_rows_before": existing,
            "source": run.summary.get("source"),
            "hand_written_query_seconds": [round(first_baseline, 3), round(second_baseline, 3)],
            "features_seconds": round(features.seconds, 3),
            "customers_written": run.customers,
            "features_phases": {k: round(v, 3) for k, v in run.summary.get("phase_seconds", {}).items()},
            "ratio_to_hand_written": round(features.seconds / best, 3),
            "target_ratio": 1.5,
        }
    )
    if refresh is not None:
        result["segments_refresh"] = {
            "segments": len(segments["ids"]),
            "created_now": segments["created"],
            "seconds": refresh["seconds"],
            "entered": refresh["entered"],
            "exited": refresh["exited"],
            "slowest": sorted(
                ({"segment": pk, **v} for pk, v in refresh["per_segment"].items()),
                key=lambda row: -row["seconds"],
            )[:5],
        }
        result["nightly_seconds"] = round(features.seconds + refresh["seconds"], 3)
        result["target_nightly_seconds"] = 60
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
