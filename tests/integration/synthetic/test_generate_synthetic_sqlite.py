"""generate_synthetic on SQLite (the demo's embedded database), through the real command line."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.synthetic import SyntheticConfig, collect
from customers.synthetic_loader import TABLE_MODELS

ROOT = Path(__file__).resolve().parents[3]
ARGS = ["--customers=150", "--products=40", "--orders=600", "--events=300", "--seed=9", "--no-progress"]


@pytest.fixture(scope="module")
def sqlite_database(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite") / "demo.sqlite3"
    env = os.environ | {
        "DATABASE_URL": f"sqlite:///{path}",
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "PYTHONPATH": str(ROOT),
    }

    def manage(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    migrated = manage("migrate", "--verbosity=0")
    assert migrated.returncode == 0, migrated.stderr
    return path, manage


def digest(path: Path) -> str:
    with sqlite3.connect(path) as db:
        h = hashlib.sha256()
        for label in TABLE_MODELS.values():
            table = label.replace(".", "_").lower()
            for row in db.execute(f"SELECT * FROM {table} ORDER BY id"):  # noqa: S608
                h.update(repr(row).encode())
        return h.hexdigest()


def test_loads_on_sqlite_refuses_to_mix_and_repeats_exactly(sqlite_database):
    path, manage = sqlite_database
    first = manage("generate_synthetic", *ARGS, "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["database"] == "sqlite"
    expected = collect(SyntheticConfig(customers=150, products=40, orders=600, browse_events=300, seed=9))
    for name, label in TABLE_MODELS.items():
        assert summary["rows"].get(label.replace(".", "_").lower(), 0) == len(expected[name]), name

    with sqlite3.connect(path) as db:
        emails = [e for (e,) in db.execute("SELECT email FROM customers_customer ORDER BY id")]
        created = db.execute("SELECT created_at FROM customers_customer WHERE id = 1").fetchone()[0]
        balances = db.execute(
            "SELECT count(*) FROM loyalty_membership m WHERE balance <> "
            "(SELECT coalesce(sum(points), 0) FROM loyalty_pointstransaction t WHERE t.membership_id = m.id)"
        ).fetchone()[0]
    assert emails == [e.decode() for e in expected["customers"].columns["email"]]
    # The generated timestamp, not the moment of loading (auto_now_add is held off).
    assert created.startswith(str(expected["customers"].columns["created_at"][0]).replace("T", " ")[:19])
    assert balances == 0

    before = digest(path)
    refused = manage("generate_synthetic", *ARGS)
    assert refused.returncode != 0
    assert "--truncate" in refused.stderr and "customers_customer (150 rows)" in refused.stderr

    again = manage("generate_synthetic", *ARGS, "--truncate")
    assert again.returncode == 0, again.stderr
    assert "Emptied first" in again.stdout
    assert digest(path) == before
