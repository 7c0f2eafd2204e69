"""Benchmark: a 100,000-recipient email campaign with recommendations, end to end, on this machine.

End to end = launch (API-level service), the ledger written by a real Celery worker, chunks
claimed, checked (consent, suppression, caps, quiet hours), rendered with each customer's
recommendations, built and sent over SMTP to a local aiosmtpd sink, and recorded in the ledger.
In the same run:

* the minimal loop -- the same render + build + SMTP send for precomputed contexts, with no
  database and no ledger, in as many processes as there are workers, one connection each --
  gives the ratio the pipeline keeps of the raw send rate;
* compose only (render + build in this process) and the sink alone (one prebuilt message sent
  with smtplib, no rendering) say what each half of the minimal loop costs.

Each stage reports the CPU time its processes spent per message (worker pool, sink processes,
PostgreSQL backends of the scratch database), which the machine's other load does not move the
way it moves wall-clock throughput; `cpu_bound_messages_per_minute` is what that CPU per message
allows on this machine's cores with nothing else running. The sink (see `send_harness.Sink`)
runs in `--sink-processes` aiosmtpd processes, on uvloop when it is installed.

Uses a scratch PostgreSQL database (created and dropped here) and Redis databases 8 (cache,
token bucket) and 9 (broker, flushed) on BENCH_REDIS. The data comes from `campaign_data.py`.
Prints one JSON object; `--out` also writes it to a file.

    python benchmarks/campaign_send.py [--customers 100000] [--workers 2] [--minimal 20000]

Targets (issue 6): >= 50,000 messages per minute end to end; end-to-end / minimal >= 0.6.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.campaign_data import RECS_PER_CUSTOMER, load_data  # noqa: E402 - the path above makes the package importable
from benchmarks.common import SCRATCH_NAME  # noqa: E402
from benchmarks.send_harness import (  # noqa: E402
    CpuMeter,
    Sink,
    database_backends,
    drop_database,
    process_tree,
    recreate_database,
    send_env,
    start_sink,
    start_worker,
    stop_process,
    use_env,
)

SCRATCH_DB = "bench_campaign_send"

# ---------------------------------------------------------------------------------------------
# End to end with a real worker


def end_to_end(
    campaign, customers: int, env: dict[str, str], workers: int, sink: Sink, database: str
) -> dict:
    from django.db import transaction

    from campaigns.models import CampaignRun, Send, SendState
    from campaigns.services.launch import launch_campaign

    worker = start_worker(env, workers, Path("/tmp") / f"bench-campaign-worker-{os.getpid()}.log")
    meter = CpuMeter()

    def groups() -> dict[str, list[int]]:
        return {
            "worker": process_tree(worker.pid),
            "sink": sink.pids,
            "postgres": database_backends(database),
        }

    try:
        sink.forget()
        before = sink.received
        meter.start(groups())
        started = time.perf_counter()
        with transaction.atomic():
            campaign = launch_campaign(campaign=campaign)
        ledger_at = None
        while True:
            time.sleep(0.25)
            meter.sample(groups())
            if (
                ledger_at is None
                and CampaignRun.objects.filter(campaign=campaign, state__in=["ready", "done"]).exists()
            ):
                ledger_at = time.perf_counter()
            if sink.received - before >= customers:
                open_rows = Send.objects.filter(
                    campaign=campaign, state__in=["queued", "sending", "deferred"]
                ).exists()
                if not open_rows:
                    break
            if time.perf_counter() - started > 3600:
                raise RuntimeError("end-to-end send did not finish within an hour")
        finished = time.perf_counter()
        meter.sample(groups())
        load = os.getloadavg()[0]
        sent = Send.objects.filter(campaign=campaign, state=SendState.SENT).count()
    finally:
        stop_process(worker)
    seconds = finished - started
    return {
        "messages": sent,
        "seconds": round(seconds, 2),
        "ledger_seconds": round((ledger_at or finished) - started, 2),
        "messages_per_minute": round(sent / seconds * 60),
        "sink_received": sink.received - before,
        "sink_duplicates": sink.duplicates(),  # the same Message-ID twice (none expected without faults)
        "cpu_per_message": meter.per_message(sent),
        "load_average_1m_at_end": round(load, 2),
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
    campaign_id: int,
    contexts: list[tuple[int, dict]],
    variant_fields: dict,
    campaign_fields: dict,
    done,
    cpu,
    index: int,
    go,
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
    started = time.process_time()
    with EmailDelivery() as delivery:
        for send_id, context in contexts:
            composed = compose(composer, variant, send_id, context, "minimal")
            outcome = delivery.deliver(composed.message)
            if outcome.kind != "sent":
                raise RuntimeError(outcome.detail)
    cpu[index] = time.process_time() - started
    with done.get_lock():
        done.value += len(contexts)


def sink_worker(port: int, raw: bytes, count: int, done, cpu, index: int, go) -> None:
    import smtplib

    go.wait()
    started = time.process_time()
    with smtplib.SMTP("127.0.0.1", port) as connection:
        for number in range(count):
            connection.sendmail("news@shop.example.com", [f"sink{number}@example.com"], raw)
    cpu[index] = time.process_time() - started
    with done.get_lock():
        done.value += count


def run_senders(target, args_for, workers: int, sink: Sink, settle: float) -> dict:
    """Start `workers` spawned processes, let them import, release them at once and time them; the
    CPU they spent (each measures its own) and the sink's, per message."""
    spawn = mp.get_context("spawn")  # fresh interpreters: no inherited sockets, threads or locks
    done, go, cpu = spawn.Value("q", 0), spawn.Event(), spawn.Array("d", workers, lock=False)
    processes = [
        spawn.Process(target=target, args=(*args_for(index), done, cpu, index, go))
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    time.sleep(settle)
    meter = CpuMeter()
    meter.start({"sink": sink.pids})
    started = time.perf_counter()
    go.set()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    meter.sample({"sink": sink.pids})
    messages = done.value
    cpu_ms = meter.per_message(messages) if messages else {}
    sink_ms = cpu_ms.get("sink_ms", 0.0)
    sender_ms = sum(cpu) / messages * 1000 if messages else 0.0
    total = sender_ms + sink_ms
    return {
        "messages": messages,
        "seconds": round(seconds, 2),
        "messages_per_minute": round(messages / seconds * 60),
        "cpu_per_message": {
            "sender_ms": round(sender_ms, 3),
            "sink_ms": sink_ms,
            "total_ms": round(total, 3),
            "cpu_bound_messages_per_minute": round((os.cpu_count() or 1) * 60_000 / total) if total else 0,
        },
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


def sink_alone(sink: Sink, raw: bytes, count: int, workers: int) -> dict:
    """The SMTP path alone: one prebuilt message sent `count` times with smtplib, no rendering.

    No send loop can go faster than this pair of client and sink."""
    result = run_senders(
        sink_worker, lambda index: (sink.port, raw, count // workers), workers, sink, settle=2
    )
    result["message_bytes"] = len(raw)
    result["message_lines"] = raw.count(b"\r\n")
    return result


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
    composing, to set beside the SMTP path's (`sink_alone`)."""
    contexts, variant, composer = message_contexts(campaign, ids, count)
    started, cpu = time.perf_counter(), time.process_time()
    for send_id, context in contexts:
        compose(composer, variant, send_id, context, "compose")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "messages": len(contexts),
        "seconds": round(seconds, 2),
        "ms_per_message": round(seconds / len(contexts) * 1000, 3),
        "cpu_ms_per_message": round(cpu / len(contexts) * 1000, 3),
        "messages_per_minute_one_process": round(len(contexts) / seconds * 60),
    }


def minimal_loop(campaign, ids: list[int], count: int, workers: int, sink: Sink) -> dict:
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
    shares = [contexts[i::workers] for i in range(workers)]
    result = run_senders(
        minimal_worker,
        lambda index: (campaign.pk, shares[index], variant_fields, campaign_fields),
        workers,
        sink,
        settle=5,  # let them import Django before the clock starts
    )
    if result["messages"] != count:
        raise RuntimeError(f"minimal loop sent {result['messages']} of {count}")
    return result


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--workers", type=int, default=2, help="send processes (worker concurrency, minimal loop)"
    )
    parser.add_argument("--minimal", type=int, default=20_000, help="messages in the minimal loop")
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument(
        "--sink-processes", type=int, default=2, help="aiosmtpd processes sharing the sink's port"
    )
    parser.add_argument(
        "--sink-loop",
        choices=["uvloop", "asyncio"],
        default=None,
        help="the sink's event loop (default: uvloop when installed)",
    )
    parser.add_argument(
        "--sink-dispatch",
        choices=["least-connections", "reuseport"],
        default="least-connections",
        help="how connections reach the sink processes (send_harness.Sink)",
    )
    parser.add_argument(
        "--database", default=SCRATCH_DB, help=f"scratch database, created and dropped (default {SCRATCH_DB})"
    )
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not SCRATCH_NAME.match(args.database):
        parser.error("the scratch database's name starts with bench_ or scratch_: it is dropped")

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis_base = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
    db_url = recreate_database(base_url, args.database)

    sink = start_sink(args.sink_processes, args.sink_loop, args.sink_dispatch)
    env = send_env(
        db_url=db_url,
        redis_base=redis_base,
        redis_db=8,
        smtp_port=sink.port,
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
        e2e = end_to_end(campaign, args.customers, env, args.workers, sink, args.database)
        raw = sample_message(campaign, ids[0])
        count = min(args.minimal, len(ids))
        composed = compose_only(campaign, ids, count)
        minimal = minimal_loop(campaign, ids, count, args.workers, sink)
        ceiling = sink_alone(sink, raw, count, args.workers)
    finally:
        sink.stop()
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            drop_database(base_url, args.database)

    ratio = e2e["messages_per_minute"] / minimal["messages_per_minute"]
    result = {
        "benchmark": "campaign_send",
        "customers": args.customers,
        "recommendations_per_message": RECS_PER_CUSTOMER,
        "workers": args.workers,
        "chunk": args.chunk,
        "sink": {"processes": args.sink_processes, "event_loop": sink.event_loop, "dispatch": sink.dispatch},
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
