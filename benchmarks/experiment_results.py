"""How long an experiment's results take, against the campaign report over the same ledger.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m benchmarks.experiment_results \
        [--recipients 50000] [--days 7]

In a scratch database: customers, a two-variant campaign whose ledger says sent `days` ago,
human opens and clicks (10 % / 12 %), orders for 3 % of recipients. Times, best of 3:
  * baseline: the campaign report (`campaigns.services.results.campaign_report`, SQL aggregates);
  * the experiment results without the daily series, and with it;
  * a cached read (what the API and the admin page do once the results are computed for the
    current data version): the data-version query plus a Redis get, and the version query alone.
Prints one JSON object (also out/benchmarks/experiment_results.json) with the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import timedelta
from decimal import Decimal

from benchmarks.common import database_info, emit, machine_info, scratch_database, setup_django


def build(recipients: int, days: int):
    from django.utils import timezone

    from campaigns.models import Arm, CampaignStatus, Send, SendState, TrackingEvent, TrackingKind
    from campaigns.services.launch import LedgerEntry, LedgerWriter, _to_rows, audience_rows
    from customers.models import Customer, Order
    from experiments.models import Experiment
    from tests.integration.campaigns import scenario

    rng = random.Random(1)
    customers = scenario.make_customers(recipients)
    campaign = scenario.make_campaign(scenario.make_segment(customers), variants=2)
    Experiment.objects.create(campaign=campaign, metric="revenue_per_recipient", method="sequential")
    campaign.status = CampaignStatus.SENDING
    campaign.save()
    run = campaign.runs.create(key="once", scheduled_for=timezone.now() - timedelta(days=days))
    writer = LedgerWriter(campaign)

    rows = _to_rows(audience_rows(Customer.objects.order_by("pk"), campaign.channel), campaign.channel)
    for i in range(0, len(rows), 5000):
        writer.write(
            [LedgerEntry(run.pk, r, run.scheduled_for) for r in rows[i : i + 5000]], now=timezone.now()
        )
    start = timezone.now() - timedelta(days=days)
    Send.objects.filter(campaign=campaign).update(state=SendState.SENT, sent_at=start, arm=Arm.VARIANT)
    b = campaign.variants.order_by("id").last().pk
    events, orders = [], []
    for send_id, variant_id, customer_id in Send.objects.filter(campaign=campaign).values_list(
        "pk", "variant_id", "customer_id"
    ):
        when = start + timedelta(hours=rng.uniform(0, 24 * days))
        if rng.random() < (0.12 if variant_id == b else 0.10):
            for kind in (TrackingKind.OPEN, TrackingKind.CLICK):
                events.append(
                    TrackingEvent(
                        send_id=send_id,
                        campaign_id=campaign.pk,
                        variant_id=variant_id,
                        customer_id=customer_id,
                        kind=kind,
                        occurred_at=when,
                    )
                )
        if rng.random() < 0.03:
            orders.append(
                Order(
                    external_id=f"b{send_id}",
                    customer_id=customer_id,
                    placed_at=when,
                    total=Decimal(f"{rng.uniform(5, 120):.2f}"),
                )
            )
    TrackingEvent.objects.bulk_create(events, batch_size=5000)
    Order.objects.bulk_create(orders, batch_size=5000)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have after a load this size
    return campaign


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    setup_django()
    with scratch_database("bench_experiment_results"):
        campaign = build(args.recipients, args.days)
        from django.core.cache import cache

        from campaigns.services.results import campaign_report
        from experiments.models import Experiment
        from experiments.services.results import cached_experiment_results, data_version, experiment_results

        experiment = Experiment.objects.get(campaign=campaign)
        baseline = best_of(lambda: campaign_report(campaign=campaign))
        without = best_of(lambda: experiment_results(experiment=experiment, with_series=False))
        full = best_of(lambda: experiment_results(experiment=experiment))
        points = len(experiment_results(experiment=experiment)["series"])
        cache.clear()
        cached_experiment_results(experiment=experiment)  # computes and stores
        cached = best_of(lambda: cached_experiment_results(experiment=experiment), repeat=5)
        version = best_of(lambda: data_version(experiment), repeat=5)
        emit(
            {
                "benchmark": "experiment_results",
                "recipients": args.recipients,
                "series_points": points,
                "campaign_report_seconds": round(baseline, 3),
                "results_seconds": round(without, 3),
                "results_with_series_seconds": round(full, 3),
                "ratio_to_campaign_report": round(without / baseline, 2),
                "ratio_with_series_to_campaign_report": round(full / baseline, 2),
                "cached_read_seconds": round(cached, 4),
                "data_version_seconds": round(version, 4),
                "ratio_cached_read_to_results_with_series": round(cached / full, 4),
                "machine": machine_info(),
                "database": database_info(),
            },
            name="experiment_results",
        )


if __name__ == "__main__":
    main()
