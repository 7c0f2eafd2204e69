"""Benchmark: a 100,000-recipient email campaign with recommendations, end to end, on this machine.

End to end = launch (API-level service), the ledger written by a real Celery worker, chunks
claimed, checked (consent, suppression, caps, quiet hours), rendered with each customer's
recommendations, built and sent over SMTP to a local aiosmtpd sink in its own process, and
recorded in the ledger. In the same run, the minimal loop -- the same render + build + SMTP send
for precomputed contexts, with no database and no ledger, in as many processes as there are
workers -- gives the ratio the pipeline keeps of the raw send rate.

Uses a scratch PostgreSQL database (created and dropped here) and Redis databases 8 (cache,
token bucket) and 9 (broker). Prints one JSON object; `--out` also writes it to a file.

    python benchmarks/campaign_send.py [--customers 100000] [--workers 2] [--minimal 20000]

Targets (issue 6): >= 50,000 messages per minute end to end; end-to-end / minimal >= 0.6.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.send_harness import (  # noqa: E402 - the path above makes the package importable
    drop_database,
    recreate_database,
    send_env,
    start_sink,
    start_worker,
    stop_process,
    use_env,
)

SCRATCH_DB = "bench_campaign_send"
PRODUCTS = 200
RECS_PER_CUSTOMER = 4
HTML = """<!doctype html><html><head><style>.card{border:1px solid #ddd;padding:8px}</style></head><body>
<p>Hello {{ customer.first_name or "there" }},</p>
<p>Picked for you this week:</p>
<table><tr>{% for p in recommendations %}<td class="card"><a href="{{ p.url }}"><img src="{{ p.image_url }}" alt="">
<br>{{ p.name }}</a><br>{{ p.price }} {{ p.currency }}<br><small>{{ p.explanation }}</small></td>{% endfor %}</tr></table>
{% if loyalty %}<p>You have {{ loyalty.points }} points.</p>{% endif %}
<p><a href="https://shop.example.com/sale">See the whole sale</a></p>
<p><a href="{{ links.unsubscribe_url }}">Unsubscribe</a> · {{ company.name }}, {{ company.postal_address }}</p>
</body></html>"""


def copy_rows(table: str, columns: list[str], rows) -> None:
    from django.db import connection

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(["\\N" if value is None else value for value in row])
    buffer.seek(0)
    with connection.cursor() as cursor:
        cursor.copy_expert(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer
        )


def load_data(customers: int):
    """Customers with consent, one segment, products, a model version with stored recommendations."""
    from django.db import connection
    from django.utils import timezone

    from campaigns.models import Campaign, Variant
    from catalog.models import Product
    from recommender.models import ModelVersion, RecommenderConfig
    from segments.models import Segment

    now = timezone.now().isoformat()
    zones = ["Europe/London", "Europe/Paris", "America/New_York", "Asia/Tokyo", ""]
    copy_rows(
        "customers_customer",
        [
            "created_at",
            "updated_at",
            "external_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "locale",
            "timezone",
            "country",
            "attributes",
        ],
        (
            (
                now,
                now,
                f"b{i}",
                f"b{i}@example.com",
                "",
                f"Name{i}",
                "Example",
                "en",
                zones[i % 5],
                "GB",
                "{}",
            )
            for i in range(customers)
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM customers_customer ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
    copy_rows(
        "customers_customerconsent",
        ["customer_id", "channel", "status", "source", "changed_at"],
        ((cid, "email", "granted", "benchmark", now) for cid in ids),
    )
    segment = Segment.objects.create(name="Benchmark audience", kind=Segment.Kind.STATIC)
    copy_rows(
        "segments_segmentmembership",
        ["segment_id", "customer_id", "entered_at"],
        ((segment.pk, cid, now) for cid in ids),
    )
    products = Product.objects.bulk_create(
        [
            Product(
                sku=f"SKU{i}",
                name=f"Stoneware mug no. {i}",
                price=f"{9 + i % 30}.99",
                stock=100,
                url=f"https://shop.example.com/p/{i}",
                image_url=f"https://cdn.example.com/p/{i}.jpg",
                category_path="Home > Mugs",
                brand="Example",
            )
            for i in range(PRODUCTS)
        ]
    )
    config = RecommenderConfig.objects.create(name="default", is_default=True)
    version = ModelVersion.objects.create(
        config=config, algorithm="item_knn", status=ModelVersion.Status.READY
    )
    config.active_version = version
    config.save(update_fields=["active_version"])
    product_ids = [p.pk for p in products]
    explanation = json.dumps({"text": "Because you bought a teapot"})
    copy_rows(
        "recommender_recommendation",
        ["model_version_id", "customer_id", "rank", "product_id", "score", "explanation"],
        (
            (
                version.pk,
                cid,
                rank + 1,
                product_ids[(index * 7 + rank * 13) % PRODUCTS],
                1.0 / (rank + 1),
                explanation,
            )
            for index, cid in enumerate(ids)
            for rank in range(RECS_PER_CUSTOMER)
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    campaign = Campaign.objects.create(
        name="Benchmark: mugs of the week",
        from_email="news@shop.example.com",
        from_name="Example Shop",
        recommendation_count=RECS_PER_CUSTOMER,
    )
    campaign.include_segments.add(segment)
    Variant.objects.create(
        campaign=campaign, name="A", subject="{{ customer.first_name }}, mugs picked for you", html=HTML
    )
    return campaign, ids


# ---------------------------------------------------------------------------------------------
# End to end with a real worker


def end_to_end(campaign, customers: int, env: dict[str, str], workers: int, received) -> dict:
    from django.db import transaction

    from campaigns.models import CampaignRun, Send, SendState
    from campaigns.services.launch import launch_campaign

    worker = start_worker(env, workers, Path("/tmp") / f"bench-campaign-worker-{os.getpid()}.log")
    try:
        before = received.value
        started = time.perf_counter()
        with transaction.atomic():
            campaign = launch_campaign(campaign=campaign)
        ledger_at = None
        while True:
            time.sleep(0.25)
            if (
                ledger_at is None
                and CampaignRun.objects.filter(campaign=campaign, state__in=["ready", "done"]).exists()
            ):
                ledger_at = time.perf_counter()
            if received.value - before >= customers:
                open_rows = Send.objects.filter(
                    campaign=campaign, state__in=["queued", "sending", "deferred"]
                ).exists()
                if not open_rows:
                    break
            if time.perf_counter() - started > 3600:
                raise RuntimeError("end-to-end send did not finish within an hour")
        finished = time.perf_counter()
        sent = Send.objects.filter(campaign=campaign, state=SendState.SENT).count()
    finally:
        stop_process(worker)
    seconds = finished - started
    return {
        "messages": sent,
        "seconds": round(seconds, 2),
        "ledger_seconds": round((ledger_at or finished) - started, 2),
        "messages_per_minute": round(sent / seconds * 60),
        "sink_received": received.value - before,
    }


# ---------------------------------------------------------------------------------------------
# The minimal loop: render + build + send over one SMTP connection, no database, no ledger


def compose(composer, variant, send_id: int, context: dict, key: str):
    """One message as the pipeline composes it (the minimal loop and compose-only time this)."""
    return composer.email(
        send_id=send_id,
        key=f"{key}:{send_id}",
        variant=variant,
        context=context,
        to=context["customer"]["email"],
        to_name=context["customer"]["first_name"],
    )


def minimal_worker(
    campaign_id: int, contexts: list[tuple[int, dict]], variant_fields: dict, campaign_fields: dict, done, go
) -> None:
    import django

    django.setup()
    from campaigns.composition import Composer
    from campaigns.delivery.email import EmailDelivery
    from campaigns.models import Campaign, Variant

    campaign = Campaign(pk=campaign_id, **campaign_fields)
    variant = Variant(campaign=campaign, **variant_fields)
    composer = Composer(campaign)
    go.wait()
    with EmailDelivery() as delivery:
        for send_id, context in contexts:
            composed = compose(composer, variant, send_id, context, "minimal")
            outcome = delivery.deliver(composed.message)
            if outcome.kind != "sent":
                raise RuntimeError(outcome.detail)
    with done.get_lock():
        done.value += len(contexts)


def sink_worker(port: int, raw: bytes, count: int, done, go) -> None:
    import smtplib

    go.wait()
    with smtplib.SMTP("127.0.0.1", port) as connection:
        for index in range(count):
            connection.sendmail("news@shop.example.com", [f"sink{index}@example.com"], raw)
    with done.get_lock():
        done.value += count


def sink_ceiling(port: int, raw: bytes, count: int, workers: int) -> dict:
    """The sink alone: one prebuilt message sent `count` times, no rendering at all.

    Everything else is measured against this: no send loop can go faster than the sink reads.
    """
    spawn = mp.get_context("spawn")
    done, go = spawn.Value("q", 0), spawn.Event()
    processes = [
        spawn.Process(target=sink_worker, args=(port, raw, count // workers, done, go))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    time.sleep(2)
    started = time.perf_counter()
    go.set()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    return {
        "messages": done.value,
        "seconds": round(seconds, 2),
        "messages_per_minute": round(done.value / seconds * 60),
        "message_bytes": len(raw),
    }


def sample_message(campaign, customer_id: int) -> bytes:
    from django.utils import timezone

    from campaigns.composition import Composer
    from campaigns.services import context as message_context
    from customers.models import Customer

    composer = Composer(campaign)
    customer = Customer.objects.filter(pk=customer_id).values(*message_context.CUSTOMER_FIELDS).get()
    context = message_context.message_context(
        customer=customer,
        loyalty=None,
        recommendations=message_context.recommendation_parts([customer_id], campaign=campaign)[customer_id],
        campaign=campaign,
        variant=campaign.variants.get(),
        unsubscribe_url=composer.unsubscribe_url(1),
        now=timezone.now(),
    )
    composed = composer.email(
        send_id=1, key="sample", variant=campaign.variants.get(), context=context, to=customer["email"]
    )
    return composed.message.raw


def message_contexts(campaign, ids: list[int], count: int):
    """The first `count` customers' render contexts, built as the pipeline builds them."""
    from django.utils import timezone

    from campaigns.composition import Composer
    from campaigns.services import context as message_context
    from customers.models import Customer

    chosen = ids[:count]
    now = timezone.now()
    customers = {
        row["id"]: row
        for row in Customer.objects.filter(pk__in=chosen).values(*message_context.CUSTOMER_FIELDS)
    }
    recommendations = message_context.recommendation_parts(chosen, campaign=campaign)
    variant = campaign.variants.get()
    composer = Composer(campaign)
    contexts = [
        (
            10_000_000 + index,
            message_context.message_context(
                customer=customers[cid],
                loyalty=None,
                recommendations=recommendations.get(cid, []),
                campaign=campaign,
                variant=variant,
                unsubscribe_url=composer.unsubscribe_url(10_000_000 + index),
                now=now,
            ),
        )
        for index, cid in enumerate(chosen)
    ]
    return contexts, variant, composer


def compose_only(campaign, ids: list[int], count: int) -> dict:
    """Render + build alone, in this one process (no SMTP, no database): the cost per message of
    composing, to set beside the SMTP path's ceiling (`sink_alone`)."""
    contexts, variant, composer = message_contexts(campaign, ids, count)
    started = time.perf_counter()
    for send_id, context in contexts:
        compose(composer, variant, send_id, context, "compose")
    seconds = time.perf_counter() - started
    return {
        "messages": len(contexts),
        "seconds": round(seconds, 2),
        "ms_per_message": round(seconds / len(contexts) * 1000, 3),
        "messages_per_minute_one_process": round(len(contexts) / seconds * 60),
    }


def minimal_loop(campaign, ids: list[int], count: int, workers: int) -> dict:
    from django.db import connections

    contexts, variant, _ = message_contexts(campaign, ids, count)
    variant_fields = {
        name: str(getattr(variant, name)) for name in ("name", "subject", "html", "text", "preheader")
    }
    variant_fields["pk"] = variant.pk
    campaign_fields = {  # plain strings: enum members would import models before django.setup()
        name: str(getattr(campaign, name))
        for name in (
            "name",
            "from_email",
            "from_name",
            "reply_to",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "channel",
        )
    }
    connections.close_all()
    spawn = mp.get_context("spawn")  # fresh interpreters: no inherited sockets, threads or locks
    done, go = spawn.Value("q", 0), spawn.Event()
    shares = [contexts[i::workers] for i in range(workers)]
    processes = [
        spawn.Process(
            target=minimal_worker, args=(campaign.pk, share, variant_fields, campaign_fields, done, go)
        )
        for share in shares
    ]
    for process in processes:
        process.start()
    time.sleep(5)  # let them import Django before the clock starts
    started = time.perf_counter()
    go.set()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    if done.value != count:
        raise RuntimeError(f"minimal loop sent {done.value} of {count}")
    return {
        "messages": count,
        "seconds": round(seconds, 2),
        "messages_per_minute": round(count / seconds * 60),
    }


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--workers", type=int, default=2, help="send processes (worker concurrency, minimal loop)"
    )
    parser.add_argument("--minimal", type=int, default=20_000, help="messages in the minimal loop")
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis_base = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
    db_url = recreate_database(base_url, SCRATCH_DB)

    sink, port, received, duplicates = start_sink()
    env = send_env(
        db_url=db_url,
        redis_base=redis_base,
        redis_db=8,
        smtp_port=port,
        CAMPAIGN_CHUNK_SIZE=str(args.chunk),
        CAMPAIGN_SEND_PARALLELISM=str(args.workers),
        CAMPAIGN_TASK_BUDGET_SECONDS="600",
        CAMPAIGN_LEASE_SECONDS="300",
    )
    use_env(env)
    from django.core.management import call_command

    try:
        t = time.perf_counter()
        call_command("migrate", verbosity=0)
        campaign, ids = load_data(args.customers)
        setup_seconds = time.perf_counter() - t
        e2e = end_to_end(campaign, args.customers, env, args.workers, received)
        e2e["sink_duplicates"] = duplicates.value  # the same Message-ID twice (none expected without faults)
        raw = sample_message(campaign, ids[0])
        composed = compose_only(campaign, ids, min(args.minimal, len(ids)))
        minimal = minimal_loop(campaign, ids, min(args.minimal, len(ids)), args.workers)
        ceiling = sink_ceiling(port, raw, min(args.minimal, len(ids)), args.workers)
    finally:
        sink.terminate()
        sink.join(10)
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            drop_database(base_url, SCRATCH_DB)

    ratio = e2e["messages_per_minute"] / minimal["messages_per_minute"]
    result = {
        "benchmark": "campaign_send",
        "customers": args.customers,
        "recommendations_per_message": RECS_PER_CUSTOMER,
        "workers": args.workers,
        "chunk": args.chunk,
        "setup_seconds": round(setup_seconds, 1),
        "end_to_end": e2e,
        "minimal_loop": minimal,
        "sink_alone": ceiling,
        "compose_only": composed,
        "ratio": round(ratio, 3),
        "targets": {"messages_per_minute": 50_000, "ratio": 0.6},
        "met": {"messages_per_minute": e2e["messages_per_minute"] >= 50_000, "ratio": ratio >= 0.6},
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
