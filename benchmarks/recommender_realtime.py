"""Latency of the recommendation API under a steady request rate, through a real server.

    python -m benchmarks.recommender_realtime --rate 50 --seconds 30

A synthetic shop is loaded into a scratch PostgreSQL database (``bench_h_reco_rt``), an ALS
version is trained, scored and promoted, then gunicorn (started and stopped by this script,
by pid) serves ``config.wsgi`` with two sync workers while an open-loop client sends requests
at a fixed rate: customers with stored rows, customers without (scored in real time), unknown
customers (cold start) and "similar products". Latency is measured from the moment a request
was due, so a server that falls behind shows it. The baseline in the same run is the cheapest
authenticated endpoint (``GET /api/v1/recommender/models/``): what any API call costs here.
Target: p95 ≤ 20 ms for the recommendations.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, database_info, emit, machine_info, scratch_database, setup_django, timed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    a = np.asarray(values) * 1000
    return {
        "count": len(values),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 2),
    }


class Server:
    def __init__(self, env: dict[str, str], workers: int) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + Path(self.log.name).read_text()[-3000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        text = Path(self.log.name).read_text(errors="replace")
        if "Traceback" in text:
            print(text[text.find("Traceback") :][:4000], file=sys.stderr)
        os.unlink(self.log.name)


def get(port: int, path: str, key: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "GET", path, headers={"Authorization": f"Api-Key {key}", "Accept": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=4_000)
    parser.add_argument("--orders", type=int, default=150_000)
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--database", default="bench_h_reco_rt")
    parser.add_argument("--name", default="recommender_realtime")
    args = parser.parse_args()

    setup_django()
    from django.conf import settings

    from core.synthetic import SyntheticConfig
    from customers.synthetic_loader import load_synthetic

    media = tempfile.mkdtemp(prefix="bench-reco-rt-media-")
    settings.MEDIA_ROOT = media
    result: dict = {
        "benchmark": "recommender_realtime",
        "config": dict(vars(args)),
        "machine": machine_info(),
    }
    with scratch_database(args.database):
        result["database"] = database_info()
        with timed("load") as load:
            load_synthetic(
                config=SyntheticConfig(
                    customers=args.customers, products=args.products, orders=args.orders, seed=1
                )
            )
        result["load_seconds"] = round(load.seconds, 1)
        from access.services import create_api_key
        from catalog.models import Product
        from customers.models import Customer
        from recommender.models import Recommendation, RecommenderConfig
        from recommender.services import registry, scoring

        config = RecommenderConfig.objects.create(
            name="default", algorithm="als", params={"factors": 64, "iterations": 10}, is_default=True
        )
        version = registry.train(config_id=config.pk, validate=False, num_threads=2)
        scoring.score_all(version_id=version.pk, promote_when_done=True)
        stored = list(
            Recommendation.objects.filter(model_version=version, rank=1).values_list(
                "customer__external_id", flat=True
            )[:5000]
        )
        with_rows = set(
            Recommendation.objects.filter(model_version=version)
            .values_list("customer_id", flat=True)
            .distinct()
        )
        without = [
            e for pk, e in Customer.objects.values_list("pk", "external_id")[:50_000] if pk not in with_rows
        ][:2000]
        skus = list(Product.objects.filter(active=True).values_list("sku", flat=True)[:2000])
        _, key = create_api_key(name="bench", scopes=["recommendations:read"])
        result["data"] = {
            "model": {
                "algorithm": version.algorithm,
                "customers": version.n_customers,
                "products": version.n_products,
            },
            "stored_customers_sampled": len(stored),
            "customers_without_rows_sampled": len(without),
        }
        db = settings.DATABASES["default"]
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings.base",
                "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
                "MEDIA_ROOT": media,
                "API_KEY_RATE": "1000000/min",
                "CONN_MAX_AGE": "600",
                "DEBUG": "0",
                "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1",
                "CACHE_KEY_PREFIX": "bench_h_reco_rt",
            }
        )
        server = Server(env, args.workers)
        try:
            server.wait_ready()
            rng = random.Random(0)
            kinds = {
                "stored": lambda: f"/api/v1/customers/{rng.choice(stored)}/recommendations?n={args.n}",
                "realtime": lambda: f"/api/v1/customers/{rng.choice(without)}/recommendations?n={args.n}",
                "unknown": lambda: (
                    f"/api/v1/customers/unknown-{rng.randrange(10**9)}/recommendations?n={args.n}"
                ),
                "similar": lambda: f"/api/v1/products/{rng.choice(skus)}/similar?n={args.n}",
                "baseline_models_list": lambda: "/api/v1/recommender/models/",
            }
            mix = ["stored"] * 6 + ["realtime"] * 2 + ["unknown", "similar"] + ["baseline_models_list"]
            for kind in kinds:  # warm-up: models loaded in every worker, connections open
                for _ in range(6 * args.workers):
                    get(server.port, kinds[kind](), key)
            latencies: dict[str, list[float]] = {k: [] for k in kinds}
            statuses: dict[str, int] = {}
            lock = threading.Lock()
            total = int(args.rate * args.seconds)
            plan = [(i / args.rate, rng.choice(mix)) for i in range(total)]
            paths = [(due, kind, kinds[kind]()) for due, kind in plan]
            started = time.perf_counter()

            def fire(due: float, kind: str, path: str) -> None:
                delay = started + due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                status = get(server.port, path, key)
                elapsed = time.perf_counter() - (started + due)
                with lock:
                    latencies[kind].append(elapsed)
                    statuses[f"{kind}:{status}"] = statuses.get(f"{kind}:{status}", 0) + 1

            with ThreadPoolExecutor(max_workers=32) as pool:
                for item in paths:
                    pool.submit(fire, *item)
            wall = time.perf_counter() - started
        finally:
            server.stop()
    recommendations = [v for k, vs in latencies.items() if k != "baseline_models_list" for v in vs]
    result["load_test"] = {
        "requests": total,
        "seconds": round(wall, 2),
        "achieved_rate": round(total / wall, 1),
        "statuses": {str(k): v for k, v in statuses.items()},
        "recommendations_all": percentiles(recommendations),
        **{kind: percentiles(values) for kind, values in latencies.items()},
    }
    base = result["load_test"]["baseline_models_list"].get("p95_ms")
    result["p95_ms"] = result["load_test"]["recommendations_all"]["p95_ms"]
    result["ratio_p95_over_baseline_endpoint"] = round(result["p95_ms"] / base, 2) if base else None
    result["target_p95_ms"] = 20
    shutil.rmtree(media, ignore_errors=True)  # the model artifacts of the scratch run
    emit(result, name=args.name)


if __name__ == "__main__":
    main()
