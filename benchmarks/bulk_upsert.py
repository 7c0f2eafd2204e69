"""Bulk upsert of customers through the API versus PostgreSQL COPY of the same rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/reachly_bench python benchmarks/bulk_upsert.py \
        [--rows 100000] [--batch 10000]

Creates (or reuses) the scratch database named in DATABASE_URL, migrates it, then:
  1. POSTs the rows in batches to /api/v1/customers/bulk/ through Django's full WSGI stack
     (middleware, authentication by API key, throttling, JSON parsing, validation, upsert, outbox);
  2. COPYs the same rows into a scratch table shaped like the customer table (same columns,
     indexes and constraints);
  3. replays the first API batch to time the no-op path (idempotent replays).
Prints one JSON object; targets: >= 10,000 rows/s through the API and >= 0.3 of COPY.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def ensure_database(url: str) -> None:
    import psycopg2

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = psycopg2.connect(parsed._replace(path="/postgres").geturl())
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def make_rows(count: int, *, seed: int = 7) -> list[dict]:
    import random

    rng = random.Random(seed)
    countries = ["GB", "FR", "DE", "NL", "IE", "ES", "IT", "US"]
    zones = ["Europe/London", "Europe/Paris", "Europe/Berlin", "America/New_York"]
    return [
        {
            "external_id": f"bench-{i:07d}",
            "email": f"bench.{i}@example.com",
            "first_name": f"First{i % 977}",
            "last_name": f"Last{i % 1013}",
            "country": rng.choice(countries),
            "timezone": rng.choice(zones),
            "locale": "en-GB",
            "attributes": {"plan": rng.choice(["free", "pro"]), "score": rng.randint(0, 100)},
        }
        for i in range(count)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()

    url = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/reachly_bench")
    if not url.startswith("postgres"):
        print(json.dumps({"error": "DATABASE_URL must point at a PostgreSQL scratch database"}))
        return 2
    ensure_database(url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from access.services import create_api_key
    from customers.models import Customer
    from webhooks.models import OutboxMessage

    call_command("migrate", verbosity=0)
    prefix = "bench-"
    Customer.all_objects.filter(external_id__startswith=prefix).delete()
    OutboxMessage.objects.filter(topic__startswith="customer.").delete()
    _, secret = create_api_key(name="bench", scopes=["customers:write"])
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {secret}")

    rows = make_rows(args.rows)
    batches = [rows[i : i + args.batch] for i in range(0, len(rows), args.batch)]
    bodies = [json.dumps({"rows": batch}) for batch in batches]

    started = time.perf_counter()
    created = 0
    for body in bodies:
        response = client.post("/api/v1/customers/bulk/", body, content_type="application/json")
        if response.status_code != 200:
            print(json.dumps({"error": response.status_code, "body": response.content[:500].decode()}))
            return 1
        created += response.json()["created"]
    api_seconds = time.perf_counter() - started

    replay_started = time.perf_counter()
    replay = client.post("/api/v1/customers/bulk/", bodies[0], content_type="application/json").json()
    replay_seconds = time.perf_counter() - replay_started

    # Where one 10k batch spends its time, outside the HTTP stack: JSON parsing, validation, and
    # the service call (validation + COPY into a temp table + INSERT … ON CONFLICT + outbox).
    from core.rows import validate_rows
    from customers import schemas
    from customers.services import upsert_customers

    phase_rows = make_rows(len(batches[0]), seed=11)
    for row in phase_rows:
        row["external_id"] = row["external_id"].replace("bench-", "bench-phase-")
    phase_body = json.dumps({"rows": phase_rows})
    t0 = time.perf_counter()
    json.loads(phase_body)
    t1 = time.perf_counter()
    validate_rows(schemas.CUSTOMER, phase_rows)
    t2 = time.perf_counter()
    upsert_customers(rows=phase_rows)
    t3 = time.perf_counter()
    phases = {
        "json_parse_seconds": round(t1 - t0, 3),
        "validation_seconds": round(t2 - t1, 3),
        "service_seconds": round(t3 - t2, 3),
        "database_seconds_estimate": round((t3 - t2) - (t2 - t1), 3),
    }
    Customer.all_objects.filter(external_id__startswith="bench-phase-").delete()

    table = Customer._meta.db_table
    columns = [
        "external_id",
        "email",
        "first_name",
        "last_name",
        "country",
        "timezone",
        "locale",
        "attributes",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([*(row[c] for c in columns[:-1]), json.dumps(row["attributes"])])
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_customer_copy")
        cursor.execute(f"CREATE TABLE bench_customer_copy (LIKE {table} INCLUDING ALL)")
        cursor.execute(
            "ALTER TABLE bench_customer_copy ALTER COLUMN phone SET DEFAULT '', ALTER COLUMN created_at SET DEFAULT now(), "
            "ALTER COLUMN updated_at SET DEFAULT now()"
        )
        buffer.seek(0)
        copy_started = time.perf_counter()
        cursor.copy_expert(
            f"COPY bench_customer_copy ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buffer
        )
        copy_seconds = time.perf_counter() - copy_started
        cursor.execute("DROP TABLE bench_customer_copy")

    api_rate = args.rows / api_seconds
    copy_rate = args.rows / copy_seconds
    print(
        json.dumps(
            {
                "benchmark": "bulk_upsert",
                "rows": args.rows,
                "batch": args.batch,
                "created": created,
                "api_seconds": round(api_seconds, 3),
                "api_rows_per_second": round(api_rate),
                "copy_seconds": round(copy_seconds, 3),
                "copy_rows_per_second": round(copy_rate),
                "api_to_copy_ratio": round(api_rate / copy_rate, 3),
                "replay_batch_rows_per_second": round(len(batches[0]) / replay_seconds),
                "replay_unchanged": replay["unchanged"],
                "one_batch_phases": phases,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "cpus": os.cpu_count(),
                "targets": {"api_rows_per_second": 10_000, "api_to_copy_ratio": 0.3},
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
