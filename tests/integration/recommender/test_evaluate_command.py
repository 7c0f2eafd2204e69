"""The `evaluate_recommender` management command, as CONTRACTS.md describes it: no database needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]


def _write_interactions(path: Path, *, users: int = 60, items: int = 40, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    lines = ["user_id,item_id,rating,timestamp,ignored"]
    for u in range(users):
        group = u % 2
        for _ in range(8):
            item = int(rng.integers(0, items // 2)) + group * (items // 2)
            lines.append(f"u{u},i{item},{int(rng.integers(1, 6))},{int(rng.integers(1_000, 9_000))},x")
    path.write_text("\n".join(lines) + "\n")


def _run(*args: str) -> subprocess.CompletedProcess:
    # A subprocess with the embedded default settings and a database URL that cannot connect:
    # the command must not touch the database.
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
        "PATH": "/usr/bin:/bin",
        "OPENBLAS_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "evaluate_recommender", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_split_and_json_output_without_a_database(tmp_path):
    data = tmp_path / "interactions.csv"
    _write_interactions(data)
    result = _run(
        "--interactions",
        str(data),
        "--split",
        "user-random",
        "--test-ratio",
        "0.25",
        "--seed",
        "42",
        "--algorithm",
        "item_knn",
        "--k",
        "5",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["algorithm"] == "item_knn"
    for key in (
        "params",
        "ndcg@5",
        "precision@5",
        "recall@5",
        "map@5",
        "coverage",
        "fit_seconds",
        "recommend_seconds",
    ):
        assert key in payload
    # Two disjoint taste groups: a neighbourhood model beats chance (about 0.07 here) by far.
    assert payload["ndcg@5"] > 0.12


def test_all_prints_a_list_best_first(tmp_path):
    data = tmp_path / "interactions.csv"
    _write_interactions(data)
    result = _run(
        "--interactions",
        str(data),
        "--split",
        "temporal",
        "--test-ratio",
        "0.25",
        "--seed",
        "1",
        "--algorithm",
        "all",
        "--k",
        "5",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    scored = [row for row in rows if "skipped" not in row]
    assert {"popularity", "item_knn", "user_knn", "ease", "als", "bpr", "hybrid"} <= {
        r["algorithm"] for r in scored
    }
    scores = [row["ndcg@5"] for row in scored]
    assert scores == sorted(scores, reverse=True)
    # Without product texts the content model cannot run, and says so instead of scoring zero.
    content = next(row for row in rows if row["algorithm"] == "content")
    assert "items" in content["skipped"]


def test_missing_columns_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("customer,product\n1,2\n")
    result = _run("--interactions", str(bad), "--split", "user-random", "--algorithm", "popularity", "--json")
    assert result.returncode != 0
    assert "user_id" in result.stderr
    assert "Traceback" not in result.stderr
