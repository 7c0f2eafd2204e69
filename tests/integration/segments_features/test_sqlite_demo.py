"""The demo's embedded default: the whole analytics pipeline on SQLite, in a process of its own.

The rest of the suite runs on PostgreSQL; this test migrates a fresh SQLite file, loads a small
synthetic shop with a year of orders and runs `compute_customer_analytics` there, then checks
the stored scores against the pure NTILE reference.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np

from segments.analytics import DEFAULT_RFM_MAPPING, quintile_scores
from tests.integration.segments_features.conftest import ROOT


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_pipeline_on_sqlite(tmp_path):
    database = tmp_path / "demo.sqlite3"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("REDIS_URL", "CELERY_BROKER_URL", "CACHE_KEY_PREFIX")
        },
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{database}",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(
        env,
        "generate_synthetic",
        "--customers",
        "400",
        "--products",
        "40",
        "--orders",
        "4000",
        "--events",
        "0",
        "--seed",
        "3",
        "--no-progress",
    )
    report = json.loads(
        _manage(env, "compute_customer_analytics", "--as-of", "2026-01-01T00:00:00+00:00", "--json")
    )

    assert {step: item["state"] for step, item in report.items()} == {
        "features": "succeeded",
        "clusters": "succeeded",
        "clv": "succeeded",
    }, report
    assert report["features"]["customers"] == 400
    assert report["clv"]["bgnbd"]["r"] > 0 and report["clv"]["gamma_gamma"]["p"] > 0
    with sqlite3.connect(database) as db:
        rows = np.array(
            db.execute(
                # Recency is derived, not stored: days from the last purchase to the run's day.
                "SELECT customer_id, julianday('2026-01-01') - julianday(date(last_order_at)), "
                "frequency, monetary, rfm_r, rfm_f, rfm_m FROM "
                "segments_customerfeatures WHERE frequency > 0 ORDER BY customer_id"
            ).fetchall(),
            dtype=np.float64,
        )
        groups = [
            g
            for (g,) in db.execute(
                "SELECT rfm_group FROM segments_customerfeatures WHERE frequency > 0 ORDER BY customer_id"
            )
        ]
        unscored = db.execute(
            "SELECT COUNT(*) FROM segments_customerfeatures WHERE frequency > 0 AND "
            "(cluster IS NULL OR p_alive IS NULL OR predicted_clv IS NULL)"
        ).fetchone()[0]
    ids = rows[:, 0].astype(np.int64)
    assert len(ids) > 300 and unscored == 0
    np.testing.assert_array_equal(rows[:, 4], quintile_scores(rows[:, 1], tiebreak=ids, descending=True))
    np.testing.assert_array_equal(rows[:, 5], quintile_scores(rows[:, 2], tiebreak=ids))
    np.testing.assert_array_equal(rows[:, 6], quintile_scores(rows[:, 3], tiebreak=ids))
    assert groups == list(
        DEFAULT_RFM_MAPPING.assign(rows[:, 4].astype(int), rows[:, 5].astype(int), rows[:, 6].astype(int))
    )
    # A second run rewrites the same values (idempotent), on SQLite's bulk_create upsert path.
    again = json.loads(
        _manage(env, "compute_customer_analytics", "--steps", "features", "--as-of", "2026-01-01", "--json")
    )
    assert again["features"]["state"] == "succeeded"
    with sqlite3.connect(database) as db:
        assert [
            g
            for (g,) in db.execute(
                "SELECT rfm_group FROM segments_customerfeatures WHERE frequency > 0 ORDER BY customer_id"
            )
        ] == groups
