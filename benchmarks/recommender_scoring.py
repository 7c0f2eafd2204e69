"""Score and store top-20 for every customer vs raw ``implicit`` recommend on the same model.

    python -m benchmarks.recommender_scoring                 # 100k customers × 20k products, ~3M rows
    python -m benchmarks.recommender_scoring --customers 20000 --products 4000 --orders 200000

The synthetic shop (core/synthetic/) is loaded into a scratch PostgreSQL database
(``bench_h_reco``, dropped afterwards), an ALS version is trained through the service, and
then, in the same run and on the same fitted model with one thread each:

* ``raw``: ``AlternatingLeastSquares.recommend`` for every customer, N=20, already-bought
  filtered (implicit's C++ top-k), nothing stored;
* ``score_and_store``: ``recommender.services.scoring.score_all``: chunks, business rules
  (stock, activity, already bought), explanations, and the rows COPY-ed into the
  recommendations table (indexes and constraints in place).

The figure is ``score_and_store / raw`` (target ≤ 1.5).
"""

from __future__ import annotations

import argparse
import shutil
import time

import numpy as np

from benchmarks.common import (
    database_info,
    emit,
    machine_info,
    peak_memory_mb,
    scratch_database,
    setup_django,
    timed,
)


def backend_cpu_seconds(connection) -> float:
    """CPU time of this connection's PostgreSQL backend (same machine): the storing half of the work."""
    import os

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115, PTH123
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--orders", type=int, default=900_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--train-threads", type=int, default=2)
    parser.add_argument("--chunk-customers", type=int, default=5000)
    parser.add_argument("--database", default="bench_h_reco")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--name", default="recommender_scoring")
    args = parser.parse_args()

    setup_django()
    from core.synthetic import SyntheticConfig
    from customers.synthetic_loader import load_synthetic

    synthetic = SyntheticConfig(
        customers=args.customers, products=args.products, orders=args.orders, seed=args.seed
    )
    result: dict = {
        "benchmark": "recommender_scoring",
        "config": {**vars(args)},
        "machine": machine_info(),
    }
    import tempfile

    from django.conf import settings

    settings.MEDIA_ROOT = tempfile.mkdtemp(prefix="bench-reco-media-")
    with scratch_database(args.database, keep=args.keep):
        result["database"] = database_info()
        with timed("load") as load:
            summary = load_synthetic(config=synthetic)
        result["load_seconds"] = round(load.seconds, 1)
        result["rows_loaded"] = summary.rows

        from recommender.models import Recommendation, RecommenderConfig
        from recommender.services import artifacts, registry, scoring

        config = RecommenderConfig.objects.create(
            name="bench",
            algorithm="als",
            params={
                "factors": args.factors,
                "iterations": args.iterations,
                "regularization": 0.1,
                "alpha": 5.0,
            },
            items_per_customer=args.n,
            is_default=True,
        )
        with timed("train") as train:
            version = registry.train(config_id=config.pk, validate=False, num_threads=args.train_threads)
        if version.status != "ready":
            raise SystemExit(f"training failed: {version.error}")
        result["model"] = {
            "algorithm": version.algorithm,
            "params": version.params,
            "customers": version.n_customers,
            "products": version.n_products,
            "interactions": version.n_interactions,
            "train_seconds": round(train.seconds, 1),
        }

        model = artifacts.load_model(version=version)
        model.model_.num_threads = 1  # implicit's own top-k: one thread, as the engine's BLAS
        matrix = model.interactions_.matrix
        users = np.arange(model.interactions_.n_users)
        from recommender.engine.base import blas_controller

        with blas_controller().limit(limits=1), timed("raw") as raw:
            ids, _ = model.model_.recommend(users, matrix, N=args.n, filter_already_liked_items=True)
        result["raw_implicit_recommend"] = {**raw.as_dict(), "lists": int(len(ids))}

        from django.db import connection

        backend_before = backend_cpu_seconds(connection)
        with timed("score_and_store") as ours:
            run = scoring.score_all(version_id=version.pk, chunk_customers=args.chunk_customers)
        backend_cpu = backend_cpu_seconds(connection) - backend_before
        stored = Recommendation.objects.filter(model_version=version).count()
        result["score_and_store"] = {
            **ours.as_dict(),
            "status": run.status,
            "chunks": run.chunks_total,
            "rows_written": run.rows_written,
            "rows_in_table": stored,
            "rows_per_second": round(stored / ours.seconds),
            "postgres_backend_cpu_seconds": round(backend_cpu, 3),
        }
        result["ratio_score_and_store_over_raw"] = round(ours.seconds / raw.seconds, 3)
        result["ratio_cpu_including_postgres"] = round((ours.cpu_seconds + backend_cpu) / raw.cpu_seconds, 3)
        result["target_ratio"] = 1.5
    result["peak_memory_mb"] = peak_memory_mb()
    result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)  # the model artifacts of the scratch run
    emit(result, name=args.name)


if __name__ == "__main__":
    main()
