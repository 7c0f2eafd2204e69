"""Time to generate and load the synthetic shop into PostgreSQL, in a scratch database.

    python -m benchmarks.synthetic_load --customers 100000 --products 20000 --orders 1000000
    python -m benchmarks.synthetic_load --customers 1000000 --products 50000 --orders 10000000

First the generator alone (numpy, nothing stored: the bound on how fast any load can be), then
the full load (binary COPY, index rebuild, ANALYZE) into `bench_synth`, dropped afterwards.
"""

from __future__ import annotations

import argparse

from benchmarks.common import (
    database_info,
    emit,
    machine_info,
    peak_memory_mb,
    scratch_database,
    setup_django,
    timed,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument(
        "--events", type=int, default=None, help="browsing events (default: as many as orders)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database", default="bench_synth")
    parser.add_argument("--keep", action="store_true", help="leave the scratch database in place")
    parser.add_argument("--skip-generate-only", action="store_true")
    parser.add_argument("--maintenance-work-mem", default="512MB")
    parser.add_argument("--name", default=None, help="file name under out/benchmarks/")
    args = parser.parse_args()

    setup_django()
    from core.synthetic import SyntheticConfig, SyntheticShop
    from customers.synthetic_loader import load_synthetic

    config = SyntheticConfig(
        customers=args.customers,
        products=args.products,
        orders=args.orders,
        browse_events=args.events,
        seed=args.seed,
    )
    result = {
        "benchmark": "synthetic_load",
        "config": config.summary(),
        "machine": machine_info(),
    }
    if not args.skip_generate_only:
        rows = 0
        with timed("generate") as generate:
            for batch in SyntheticShop(config).tables():
                rows += sum(len(t) for t in batch)
        result["generate_only"] = {
            **generate.as_dict(),
            "rows": rows,
            "rows_per_second": round(rows / generate.seconds),
        }

    with scratch_database(args.database, keep=args.keep):
        result["database"] = database_info()
        with timed("load") as load:
            summary = load_synthetic(config=config, maintenance_work_mem=args.maintenance_work_mem)
        result["load"] = {
            **load.as_dict(),
            "rows": summary.total_rows,
            "rows_per_second": round(summary.total_rows / load.seconds),
            "phases": {k: round(v, 2) for k, v in summary.seconds.items()},
            "tables": summary.rows,
            "copy_seconds_by_table": {k: round(v, 2) for k, v in summary.copy_seconds.items()},
            "slowest_rebuilds": {
                k: round(v, 2) for k, v in sorted(summary.rebuild_seconds.items(), key=lambda kv: -kv[1])[:15]
            },
        }
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            result["load"]["database_size_gb"] = round(cursor.fetchone()[0] / 2**30, 2)
    result["peak_memory_mb"] = peak_memory_mb()
    name = args.name or f"synthetic_load_{config.customers}_{config.orders}"
    emit(result, name=name)


if __name__ == "__main__":
    main()
