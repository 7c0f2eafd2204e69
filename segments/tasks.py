"""Celery tasks of segments (queue `segments`): thin wrappers that take ids and call the services.

Safe to run twice: a refresh recomputes the diff from the database under an advisory lock, and
the touched-customer table is drained only after each batch committed.
"""

from __future__ import annotations

from celery import shared_task

from segments import drain, reconciler, services

_TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="segments.refresh", soft_time_limit=1500, time_limit=1800, **_TASK_OPTIONS)
def refresh(segment_id: int, cascade: bool = True) -> dict:
    """Full refresh of one segment (on demand: the API, the admin), then of the segments built on it."""
    try:
        result = services.refresh_segment(segment_id=segment_id).as_dict()
    except Exception as exc:  # noqa: BLE001 - the failure is recorded on the segment; no retry storm
        return {"segment_id": segment_id, "failed": type(exc).__name__}
    if cascade and (result["entered"] or result["exited"]):
        dependents = services.dependents_of(segment_id=segment_id)
        services.mark_queued(segment_ids=dependents)
        for pk in dependents:
            refresh.delay(pk)
    return result


@shared_task(name="segments.refresh_all", soft_time_limit=3300, time_limit=3500, **_TASK_OPTIONS)
def refresh_all() -> dict:
    """Periodic (beat) full refresh of every active dynamic segment in dependency order."""
    results = services.refresh_all_segments()
    if results is None:
        return {"skipped": "another full refresh is running"}
    return {
        "segments": len(results),
        "failed": sum(1 for r in results if r.skipped in ("failed", "interrupted")),
    }


@shared_task(name="segments.refresh_touched", soft_time_limit=540, time_limit=600, **_TASK_OPTIONS)
def refresh_touched() -> dict:
    """Incremental refresh for customers touched by new events/orders (after ingest and every minute)."""
    return drain.refresh_touched() or {"skipped": "another drain is running"}


@shared_task(name="segments.reconcile", soft_time_limit=120, time_limit=150, **_TASK_OPTIONS)
def reconcile() -> dict:
    """Every few minutes (beat): refreshes whose worker died mid-way or whose task was lost run again."""
    segment_ids = reconciler.reconcile_refreshes()
    for pk in segment_ids:
        refresh.delay(pk)
    return {"requeued": segment_ids}
