"""`make demo` end to end: the real command in a subprocess, on the embedded default, run twice.

The command runs exactly as a newcomer's `make demo` does (SQLite, eager tasks, mail to files),
only on the first customers of the sample and without parameter tuning, into a temporary output
directory. The second run reuses that directory: it must start clean and write the same JSON.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from campaigns.models import Conversion, Send
from customers.models import Customer
from recommender.engine.registry import ALGORITHMS
from recommender.models import Recommendation

ROOT = Path(__file__).resolve().parents[3]
CUSTOMERS = 100
#: Variables of the machine's services that would take the demo off its embedded default.
SERVICE_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "CACHE_KEY_PREFIX",
    "EMAIL_URL",
    "EMAIL_BACKEND",
    "EMAIL_FILE_PATH",
)


def run_demo(out: Path, database: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DATABASE_URL=f"sqlite:///{database or out / 'demo.sqlite3'}",
        OPENBLAS_NUM_THREADS="1",
    )
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            "demo",
            "--out",
            str(out),
            "--limit-customers",
            str(CUSTOMERS),
            "--fast",
            "--no-progress",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    first = run_demo(out)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    first_json = (out / "demo-report.json").read_text()
    second = run_demo(out)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return {
        "out": out,
        "first": first_json,
        "second": (out / "demo-report.json").read_text(),
        "stdout": second.stdout,
    }


@pytest.fixture(scope="module")
def report(two_runs):
    return json.loads(two_runs["second"])


def test_a_second_run_starts_clean_and_gives_the_same_numbers(two_runs):
    assert two_runs["first"] == two_runs["second"]


def test_import_and_loyalty(report):
    data = report["import"]
    assert data["customers"] == CUSTOMERS
    assert data["orders"] > CUSTOMERS
    assert data["products"] > 100
    assert data["email_consent"] == {"granted": CUSTOMERS}
    assert data["consent_records_demo"] == CUSTOMERS
    assert data["rows_read"] > data["order_lines"] > 0
    assert data["dropped_total"] == sum(data["dropped"].values())
    loyalty = report["loyalty"]
    assert loyalty["members"] == CUSTOMERS
    assert loyalty["points_net"] > 0
    assert sum(loyalty["members_by_tier"].values()) == CUSTOMERS


def test_every_recommender_is_compared_and_the_chosen_one_scored_everyone(report, two_runs):
    reco = report["recommender"]
    assert [r["algorithm"] for r in reco["comparison"]] and {
        r["algorithm"] for r in reco["comparison"]
    } == set(ALGORITHMS)
    scored = [r for r in reco["comparison"] if "skipped" not in r]
    assert len(scored) == len(ALGORITHMS)  # the catalog has names, so content runs too
    for row in scored:
        assert 0 <= row["ndcg@10"] <= 1 and 0 <= row["coverage"] <= 1
    assert [r["ndcg@10"] for r in scored] == sorted((r["ndcg@10"] for r in scored), reverse=True)
    chosen = reco["chosen"]
    assert sum(r["chosen"] for r in scored) == 1
    # Customers with purchases are scored; the others get the popular fallback when campaigns read.
    assert report["analytics"]["customers_with_orders"] <= chosen["customers_scored"] <= CUSTOMERS
    assert chosen["customers_scored"] <= chosen["recommendations"]
    assert chosen["recommendations"] <= chosen["customers_scored"] * chosen["items_per_customer"]
    # Personal lists, not everyone's bestsellers (a model trained on near-zero weights would be).
    assert chosen["distinct_first_products"] >= chosen["customers_scored"] // 10
    assert chosen["distinct_top4_products"] >= chosen["customers_scored"] // 3
    with sqlite3.connect(two_runs["out"] / "demo.sqlite3") as db:
        (stored,) = db.execute(f"SELECT COUNT(*) FROM {Recommendation._meta.db_table}").fetchone()
    assert stored == chosen["recommendations"]
    assert "ndcg@10" in two_runs["stdout"]  # the comparison table is printed


def test_rfm_clusters_clv_and_segments(report):
    analytics = report["analytics"]
    with_orders = analytics["customers_with_orders"]
    assert 0 < with_orders <= CUSTOMERS
    assert sum(analytics["rfm_groups"].values()) == with_orders
    assert sum(map(sum, analytics["rfm_grid"]["counts"])) == with_orders
    assert sum(p["customers"] for p in analytics["clusters"]["profiles"]) == with_orders
    clv = analytics["clv"]
    assert clv["data"].startswith("synthetic")
    assert all(v > 0 for v in clv["bgnbd"].values()) and all(v > 0 for v in clv["gamma_gamma"].values())
    assert 0 < clv["clv_12_months"]["quantiles"]["p50"] <= clv["clv_12_months"]["quantiles"]["p90"]
    assert analytics["segments"]["Email subscribers"] == CUSTOMERS
    assert analytics["segments"]["Champions"] == analytics["rfm_groups"].get("Champions", 0)


def test_the_campaign_went_through_the_ledger_to_the_mail_sink(report, two_runs):
    campaign = report["campaign"]
    ledger = campaign["ledger"]
    assert set(ledger) <= {"sent", "held_out"}
    assert ledger["sent"] + ledger.get("held_out", 0) == CUSTOMERS
    assert sum(campaign["arms"].values()) == CUSTOMERS
    assert campaign["arms"].get("control", 0) == ledger.get("held_out", 0)
    assert campaign["messages_in_mail_dir"] == ledger["sent"]
    eml = sorted(p.name for p in (two_runs["out"] / "eml").glob("*.eml"))
    assert eml == campaign["eml_files"] and len(eml) == 6
    body = (two_runs["out"] / "eml" / eml[0]).read_text()
    assert "/t/c/" in body and "List-Unsubscribe" in body
    totals = campaign["report"]["totals"]
    assert totals["sent"] == ledger["sent"] and totals["delivered"] == ledger["sent"]


def test_engagement_went_through_tracking_and_attribution(report, two_runs):
    engagement = report["engagement"]
    tracking = engagement["tracking"]
    sent = report["campaign"]["ledger"]["sent"]
    assert 0 < tracking["customers_opened"] <= sent
    assert 0 < tracking["customers_clicked"] <= tracking["customers_opened"]
    assert tracking["opens_machine"] == engagement["requests"]["machine_open"]
    assert tracking["clicks_human"] == engagement["requests"]["click"]
    assert 0 < engagement["conversions"] <= engagement["orders"]
    assert sum(engagement["conversions_by_touch"].values()) == engagement["conversions"]
    with sqlite3.connect(two_runs["out"] / "demo.sqlite3") as db:
        (conversions,) = db.execute(f"SELECT COUNT(*) FROM {Conversion._meta.db_table}").fetchone()
        (sends,) = db.execute(f"SELECT COUNT(*) FROM {Send._meta.db_table}").fetchone()
    assert conversions == engagement["conversions"]
    assert sends == CUSTOMERS


def test_the_test_is_analysed(report):
    experiment = report["experiment"]
    arms = experiment["arms"]
    assert sum(a["customers"] for a in arms.values()) == CUSTOMERS
    for arm in arms.values():
        assert 0 <= arm["ordered"] <= arm["customers"]
    comparison = experiment["order_rate_a_vs_b"]
    assert comparison["ci_low"] <= comparison["effect"] <= comparison["ci_high"]
    expected = arms["A"]["order_rate"] - arms["B"]["order_rate"]
    assert comparison["effect"] == pytest.approx(expected, abs=1e-6)
    assert 0 <= experiment["order_rate_a_vs_b_bayesian"]["chance_to_win"] <= 1
    assert experiment["sample_ratio"]["observed"] == [arms[a]["customers"] for a in ("control", "B", "A")]
    assert 0 <= experiment["sample_ratio"]["p_value"] <= 1
    assert experiment["decision"]
    # The product's own results service (recipients only) agrees on the variants' sizes.
    product = experiment["product_results"]
    assert {a["name"]: a["recipients"] for a in product["arms"]} == {
        "A": arms["A"]["customers"],
        "B": arms["B"]["customers"],
    }
    assert product["verdict"] and product["admin_path"].endswith("/results/")


def test_the_html_report_is_self_contained_with_its_plots(two_runs):
    html = (two_runs["out"] / "report.html").read_text()
    assert html.count("<svg") == 5
    assert "<script" not in html and "<link" not in html and 'src="http' not in html
    for heading in ("The verdict", "Recommenders on held-out purchases", "RFM groups", "The campaign"):
        assert heading in html
    assert "demo-pass-2026" in two_runs["stdout"] and "make run" in two_runs["stdout"]


def test_a_database_outside_the_output_directory_with_data_is_left_alone(two_runs, tmp_path):
    database = two_runs["out"] / "demo.sqlite3"
    with sqlite3.connect(database) as db:
        (before,) = db.execute(f"SELECT COUNT(*) FROM {Customer._meta.db_table}").fetchone()
    refused = run_demo(tmp_path / "elsewhere", database=database)
    assert refused.returncode != 0
    assert "already has customers" in refused.stderr
    with sqlite3.connect(database) as db:
        (after,) = db.execute(f"SELECT COUNT(*) FROM {Customer._meta.db_table}").fetchone()
    assert after == before == CUSTOMERS
