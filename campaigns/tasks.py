"""Celery tasks of campaigns: thin wrappers that take ids and call the services.

Names starting with `campaigns.send_` are routed to the `sends` queue (its own worker, prefetch
1); the rest go to `default`. Every task is safe to run twice: the ledger's unique key, leases
and conditional status updates decide, never the task itself.
"""

from __future__ import annotations

from celery import shared_task

from campaigns.services import runs, sending

_TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="campaigns.send_batch", soft_time_limit=600, time_limit=660, **_TASK_OPTIONS)
def send_batch(campaign_id: int) -> dict:
    """Send chunks of one campaign for up to CAMPAIGN_TASK_BUDGET_SECONDS, then hand over."""
    totals = sending.send_campaign_chunks(campaign_id=campaign_id)
    if totals.get("more"):
        send_batch.delay(campaign_id)
    return totals


@shared_task(name="campaigns.send_test", soft_time_limit=120, time_limit=150, **_TASK_OPTIONS)
def send_test(test_send_id: int) -> dict:
    from campaigns.services.previews import deliver_test_send

    return deliver_test_send(test_send_id=test_send_id)


@shared_task(name="campaigns.prepare_run", soft_time_limit=1500, time_limit=1800, **_TASK_OPTIONS)
def prepare_run(run_id: int) -> int:
    """Compute the audience of a due run and write its ledger."""
    return runs.write_run_ledger(run_id=run_id)


@shared_task(name="campaigns.write_trigger_ledgers", soft_time_limit=300, time_limit=360, **_TASK_OPTIONS)
def write_trigger_ledgers() -> int:
    written = runs.write_trigger_ledgers()
    return written


@shared_task(name="campaigns.dispatch_due", soft_time_limit=50, time_limit=58, **_TASK_OPTIONS)
def dispatch_due() -> dict:
    """Every minute (beat): reclaim dead leases, start due runs, wake senders, close finished work."""
    return sending.dispatch_due()


@shared_task(name="campaigns.process_triggers", soft_time_limit=240, time_limit=280, **_TASK_OPTIONS)
def process_triggers() -> dict:
    """Every minute (beat): turn new events, segment entries and expiring points into trigger runs."""
    from campaigns.services.triggers import scan_triggers

    report = scan_triggers()
    runs.write_trigger_ledgers()
    return report


@shared_task(name="campaigns.attribute_orders", soft_time_limit=240, time_limit=280, **_TASK_OPTIONS)
def attribute_orders() -> int:
    """Every few minutes (beat): credit new orders to the last click or open within the window."""
    from campaigns.tracking.conversions import attribute_new_orders

    return attribute_new_orders()


@shared_task(name="campaigns.on_events_ingested", soft_time_limit=120, time_limit=150, **_TASK_OPTIONS)
def on_events_ingested(event_ids: list[int]) -> int:
    """Right after ingest: start the runs these events trigger (the minute scan is the safety net)."""
    from campaigns.services.triggers import fire_event_triggers

    started = fire_event_triggers(event_ids=event_ids)
    if started:
        runs.write_trigger_ledgers()
    return started


@shared_task(name="campaigns.on_orders_ingested", soft_time_limit=120, time_limit=150, **_TASK_OPTIONS)
def on_orders_ingested(order_ids: list[int]) -> int:
    """Right after ingest: attribute these orders (the periodic scan is the safety net)."""
    from campaigns.tracking.conversions import attribute_orders

    return attribute_orders(order_ids=order_ids)
