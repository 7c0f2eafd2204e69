"""Scheduled loyalty work (beat: see CELERY_BEAT_SCHEDULE). Both tasks are set-based and idempotent."""

from __future__ import annotations

from celery import shared_task

from loyalty import services


@shared_task(name="loyalty.expire_points", acks_late=True, time_limit=30 * 60, soft_time_limit=25 * 60)
def expire_points() -> int:
    return services.expire_points()


@shared_task(name="loyalty.reevaluate_tiers", acks_late=True, time_limit=30 * 60, soft_time_limit=25 * 60)
def reevaluate_tiers(program_id: int | None = None) -> int:
    from loyalty.models import LoyaltyProgram

    program = LoyaltyProgram.objects.filter(pk=program_id).first() if program_id else None
    return services.reevaluate_tiers(program=program)
