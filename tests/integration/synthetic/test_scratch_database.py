"""benchmarks.common.scratch_database on the real server, in a child process as a benchmark runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg2
from django.db import connection

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import json
from benchmarks.common import scratch_database, setup_django
setup_django()
from django.db import connection
from core.synthetic import SyntheticConfig
from customers.synthetic_loader import load_synthetic
before = connection.settings_dict["NAME"]
with scratch_database("scratch_synthetic_probe"):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        inside = cursor.fetchone()[0]
    summary = load_synthetic(config=SyntheticConfig(customers=50, products=10, orders=120, seed=1))
print(json.dumps({"before": before, "inside": inside, "after": connection.settings_dict["NAME"],
                  "orders": summary.rows["customers_order"]}))
"""


def server_databases() -> set[str]:
    settings = connection.settings_dict
    with (
        psycopg2.connect(
            dbname="postgres",
            user=settings["USER"] or None,
            host=settings["HOST"] or None,
            port=settings["PORT"] or None,
        ) as server,
        server.cursor() as cursor,
    ):
        cursor.execute("SELECT datname FROM pg_database")
        return {row[0] for row in cursor.fetchall()}


def test_scratch_database_is_created_migrated_used_and_dropped():
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "config.settings.test", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["inside"] == "scratch_synthetic_probe"
    assert report["before"] == report["after"] != "scratch_synthetic_probe"
    assert report["orders"] == 120
    assert "scratch_synthetic_probe" not in server_databases()
