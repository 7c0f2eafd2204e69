"""Load test: event ingest and recommendation reads at a steady rate against gunicorn on localhost,
first alone (the baseline), then while a real Celery worker sends a campaign to a local SMTP sink.

Everything runs on this machine and is stopped by pid at the end: a scratch PostgreSQL database
(`bench_load` unless --scratch-db says otherwise, created and dropped here), Redis databases 10 (cache) and 11 (broker) unless
--redis-db says otherwise, gunicorn, a Celery worker, an aiosmtpd sink (processes sharing one port), and
locust headless (bounded in users and time). Prints one JSON object: per phase the request count,
failures, error rate, achieved rate and p50/p95/p99 latencies, and the ratio of the p95 during the
send to the baseline p95 measured in the same run. Exit status 1 if any request failed.

    python benchmarks/load/run.py [--duration 120] [--users 10] [--user-rate 2] [--customers 10000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.campaign_data import load_data  # noqa: E402 - the path above makes the package importable
from benchmarks.send_harness import (  # noqa: E402
    drop_database,
    free_port,
    recreate_database,
    send_env,
    start_sink,
    start_worker,
    stop_process,
    use_env,
)

SCRATCH_DB = "bench_load"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def start_gunicorn(env: dict[str, str], port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--log-level",
            "warning",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(log, "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return process
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)
    stop_process(process)
    raise RuntimeError("gunicorn did not answer /healthz in time")


def read_path(port: int, api_key: str) -> tuple[str, str]:
    """The per-customer recommendations endpoint from the live OpenAPI schema, if this build has one."""
    request = urllib.request.Request(  # noqa: S310 - localhost
        f"http://127.0.0.1:{port}/api/schema/?format=json", headers={"Authorization": f"Api-Key {api_key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            schema = json.loads(response.read())
    except (OSError, ValueError):
        schema = {"paths": {}}
    for path, operations in sorted(schema.get("paths", {}).items()):
        if "recommendation" in path and "get" in operations and path.count("{") == 1:
            start, end = path.index("{"), path.index("}")
            return path[:start] + "{customer}" + path[end + 1 :], "recommendations"
    return "/api/v1/customers/{customer}/", "customer profile (no recommendations endpoint in this build)"


def run_locust(label: str, *, host: str, env: dict[str, str], users: int, duration: int, out: Path) -> dict:
    prefix = out / label
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--users",
            str(users),
            "--spawn-rate",
            str(max(1, users // 2)),
            "--run-time",
            f"{duration}s",
            "--host",
            host,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--stop-timeout",
            "10",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=duration + 120,
    )
    elapsed = time.monotonic() - started
    rows = list(csv.DictReader(Path(f"{prefix}_stats.csv").read_text().splitlines()))
    if not rows:
        raise RuntimeError(f"locust wrote no statistics:\n{result.stderr[-3000:]}")

    def figures(row: dict) -> dict:
        requests, failures = int(row["Request Count"]), int(row["Failure Count"])
        return {
            "requests": requests,
            "failures": failures,
            "error_rate": round(failures / requests, 5) if requests else None,
            "requests_per_second": round(float(row["Requests/s"]), 2),
            "p50_ms": float(row["50%"]),
            "p95_ms": float(row["95%"]),
            "p99_ms": float(row["99%"]),
            "max_ms": round(float(row["Max Response Time"]), 1),
        }

    by_name = {row["Name"]: figures(row) for row in rows}
    failures_file = Path(f"{prefix}_failures.csv")
    failure_samples = (
        list(csv.DictReader(failures_file.read_text().splitlines()))[:5] if failures_file.exists() else []
    )
    return {
        "seconds": round(elapsed, 1),
        "all": by_name.pop("Aggregated"),
        "endpoints": by_name,
        "failure_samples": failure_samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=120, help="seconds per phase")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--user-rate", type=float, default=2.0, help="requests per second per user")
    parser.add_argument("--customers", type=int, default=10_000, help="customers (and campaign recipients)")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument("--send-workers", type=int, default=1)
    parser.add_argument("--redis-db", type=int, default=10, help="cache; the broker uses the next one")
    parser.add_argument(
        "--scratch-db",
        default=os.environ.get("LOAD_SCRATCH_DB", SCRATCH_DB),
        help=f"database created and dropped for the run (default {SCRATCH_DB})",
    )
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.duration > 600 or args.users > 200:
        parser.error("keep the load bounded: --duration <= 600 and --users <= 200")

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis_base = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
    db_url = recreate_database(base_url, args.scratch_db)
    work = Path(tempfile.mkdtemp(prefix="reachly-load-"))

    sink = start_sink()
    env = send_env(
        db_url=db_url,
        redis_base=redis_base,
        redis_db=args.redis_db,
        smtp_port=sink.port,
        API_KEY_RATE="1000000/min",
        CAMPAIGN_CHUNK_SIZE="200",
    )
    use_env(env)
    from django.core.management import call_command
    from django.db import connections, transaction

    web = worker = None
    try:
        call_command("migrate", verbosity=0)
        campaign, ids = load_data(args.customers)
        from access.services import create_api_key

        _, api_key = create_api_key(
            name="load-test",
            scopes=["events:write", "customers:read", "products:read", "recommendations:read"],
        )
        connections.close_all()
        web_port = free_port()
        web = start_gunicorn(env, web_port, args.web_workers, args.web_threads, work / "gunicorn.log")
        path, read_kind = read_path(web_port, api_key)
        worker = start_worker(env, args.send_workers, work / "worker.log")
        locust_env = {
            **env,
            "LOAD_API_KEY": api_key,
            "LOAD_CUSTOMERS": str(args.customers),
            "LOAD_READ_PATH": path,
            "LOAD_READ_NAME": "GET recommendations" if read_kind == "recommendations" else "GET customer",
            "LOAD_USER_RATE": str(args.user_rate),
        }
        host = f"http://127.0.0.1:{web_port}"
        baseline = run_locust(
            "baseline", host=host, env=locust_env, users=args.users, duration=args.duration, out=work
        )

        from campaigns.models import Send, SendState
        from campaigns.services.launch import launch_campaign

        before = sink.received
        send_started = time.monotonic()
        with transaction.atomic():
            launch_campaign(campaign=campaign)  # the worker writes the ledger and sends
        during = run_locust(
            "during_send", host=host, env=locust_env, users=args.users, duration=args.duration, out=work
        )
        sent_in_window = sink.received - before
        deadline = time.monotonic() + 600
        while (
            Send.objects.filter(campaign=campaign, state__in=["queued", "sending", "deferred"]).exists()
            or not Send.objects.filter(campaign=campaign).exists()
        ) and time.monotonic() < deadline:
            time.sleep(0.5)
        send_seconds = time.monotonic() - send_started
        sent = Send.objects.filter(campaign=campaign, state=SendState.SENT).count()
    finally:
        for process in (web, worker):
            if process is not None:
                stop_process(process)
        duplicates = sink.duplicates()
        sink.stop()
        connections.close_all()
        if not args.keep_db:
            drop_database(base_url, args.scratch_db)
            shutil.rmtree(work, ignore_errors=True)  # locust's CSVs and the server logs

    failures = baseline["all"]["failures"] + during["all"]["failures"]
    result = {
        "benchmark": "load",
        "read": read_kind,
        "users": args.users,
        "offered_requests_per_second": args.users * args.user_rate,
        "duration_per_phase_seconds": args.duration,
        "web": {"server": "gunicorn", "workers": args.web_workers, "threads": args.web_threads},
        "baseline": baseline,
        "during_send": {
            **during,
            "campaign": {
                "recipients": args.customers,
                "sent_during_window": sent_in_window,
                "sent_total": sent,
                "send_seconds": round(send_seconds, 1),
                "messages_per_minute": round(sent / send_seconds * 60) if send_seconds else None,
                "sink_duplicates": duplicates,
            },
        },
        "p95_ratio_during_send_to_baseline": round(during["all"]["p95_ms"] / baseline["all"]["p95_ms"], 2)
        if baseline["all"]["p95_ms"]
        else None,
        "error_rate": round(failures / (baseline["all"]["requests"] + during["all"]["requests"]), 5),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
