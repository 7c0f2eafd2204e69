"""The admin dashboard's figures on a large audience, against one full count of the customers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m benchmarks.admin_dashboard \
        [--customers 1000000] [--sent-share 0.5]

Fills a scratch database with customers (each with email consent, a tenth with push consent),
one sent campaign reaching a share of them spread over 30 days, human opens for a fifth of the
sends and clicks for a twentieth, then times `dashboard_numbers()` (every figure on the page,
uncached) and, as the baseline measured in the same run, `SELECT count(*)` of the customer table.
The ratio says how many full counts the dashboard costs; the target is a page under a second on a
million customers (the page itself reads the one-minute cache).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    database_info,
    emit,
    machine_info,
    scratch_database,
    setup_django,
    timed,
)


def fill(*, customers: int, sent_share: float) -> dict[str, int]:
    """Set-based inserts (INSERT … SELECT generate_series), so filling costs seconds, not minutes."""
    from django.db import connection
    from django.utils import timezone

    from campaigns.models import Campaign, CampaignRun, Variant

    now = timezone.now()
    campaign = Campaign.objects.create(name="Benchmark", status="sent", launched_at=now)
    variant = Variant.objects.create(campaign=campaign, name="A", subject="Hi", html="<p>Hi</p>")
    run = CampaignRun.objects.create(campaign=campaign, key="bench", state="done", scheduled_for=now)
    sent = int(customers * sent_share)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO customers_customer (external_id, email, phone, first_name, last_name, locale,
                timezone, country, attributes, created_at, updated_at)
            SELECT 'b' || i, 'b' || i || '@example.com', '', 'F' || (i %% 997), '', '', '', 'GB', '{}',
                   now(), now()
            FROM generate_series(1, %s) AS i
            """,
            [customers],
        )
        cursor.execute(
            """
            INSERT INTO customers_customerconsent (customer_id, channel, status, source, changed_at)
            SELECT id, 'email', 'granted', 'bench', now() FROM customers_customer
            UNION ALL
            SELECT id, 'push', 'granted', 'bench', now() FROM customers_customer WHERE id %% 10 = 0
            """,
            [],
        )
        cursor.execute(
            """
            INSERT INTO campaigns_send (run_id, campaign_id, variant_id, customer_id, channel, arm, state,
                reason, lease_owner, attempts, kills, message_id, provider_message_id, created_at,
                updated_at, sent_at)
            SELECT %s, %s, %s, id, 'email', 'variant', 'sent', '', '', 1, 0, 'bench-' || id, '', now(), now(),
                   now() - (id %% 30) * interval '1 day'
            FROM customers_customer ORDER BY id LIMIT %s
            """,
            [run.pk, campaign.pk, variant.pk, sent],
        )
        cursor.execute(
            """
            INSERT INTO campaigns_trackingevent (send_id, campaign_id, variant_id, customer_id, kind, machine,
                machine_reason, detail, user_agent, occurred_at)
            SELECT id, campaign_id, variant_id, customer_id, 'open', false, '', '', '', sent_at + interval '1 hour'
            FROM campaigns_send WHERE id %% 5 = 0
            UNION ALL
            SELECT id, campaign_id, variant_id, customer_id, 'click', false, '', '', '', sent_at + interval '2 hours'
            FROM campaigns_send WHERE id %% 20 = 0
            """,
            [],
        )
        cursor.execute("ANALYZE")
    return {"customers": customers, "sends": sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--sent-share", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    from core.dashboard import dashboard_numbers

    with scratch_database("bench_admin_dashboard"):
        with timed("fill") as filling:
            counts = fill(customers=args.customers, sent_share=args.sent_share)
        dashboard_runs, baseline_runs = [], []
        for _ in range(args.repeat):
            with timed("baseline") as baseline, connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM customers_customer")
                cursor.fetchone()
            baseline_runs.append(baseline.seconds)
            with timed("dashboard") as dashboard:
                data = dashboard_numbers()
            dashboard_runs.append(dashboard.seconds)
        assert data["customers"] == args.customers and data["totals_30d"]["sent"] == counts["sends"]
        best_dashboard, best_baseline = min(dashboard_runs), min(baseline_runs)
        emit(
            {
                "benchmark": "admin_dashboard",
                **counts,
                "fill_seconds": round(filling.seconds, 2),
                "dashboard_seconds": round(best_dashboard, 4),
                "baseline_count_seconds": round(best_baseline, 4),
                "ratio_to_count": round(best_dashboard / best_baseline, 2) if best_baseline else None,
                "runs": {
                    "dashboard": [round(s, 4) for s in dashboard_runs],
                    "baseline": [round(s, 4) for s in baseline_runs],
                },
                "machine": machine_info(),
                "database": database_info(),
            },
            name="admin_dashboard",
        )


if __name__ == "__main__":
    main()
