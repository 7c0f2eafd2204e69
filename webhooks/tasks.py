"""Beat runs `webhooks.dispatch_due` every 30 s; several may overlap safely (SKIP LOCKED leases)."""

from __future__ import annotations

from celery import shared_task

from webhooks import services


@shared_task(name="webhooks.dispatch_due", acks_late=True, time_limit=120, soft_time_limit=90)
def dispatch_due() -> dict[str, int]:
    return services.dispatch_due()


@shared_task(name="webhooks.prune_outbox", acks_late=True, time_limit=30 * 60, soft_time_limit=25 * 60)
def prune_outbox(days: int = 30) -> int:
    from datetime import timedelta

    return services.prune_outbox(older_than=timedelta(days=days))
