"""Celery tasks of the recommender (queue ``recommender``): thin wrappers taking ids.

``recommender.train`` (nightly by beat, or on demand) fits a new version and, when it is
better than nothing, scores it and promotes it at the end; ``recommender.score_all`` fans a
version's customers out into ``recommender.score_chunk`` tasks and the last chunk enqueues
``recommender.finalise_scoring``. Training and chunk leases and run states live in PostgreSQL,
so every task is safe to run twice and ``recommender.reconcile`` (beat) re-enqueues lost work:
a training run or a chunk whose worker died, or whose task was lost.
"""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from recommender.models import ModelVersion, RecommenderConfig, ScoringChunk
from recommender.services import refresh, registry, scoring

_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="recommender.train", soft_time_limit=3 * 3600, time_limit=3 * 3600 + 120, **_OPTIONS)
def train(config_id: int, version_id: int | None = None, score: bool = True) -> dict:
    """Train; then score the new version and promote it when scoring is done (if ready)."""
    version = registry.train(config_id=config_id, version_id=version_id)
    if version.status == ModelVersion.Status.READY and score:
        transaction.on_commit(lambda: score_all.delay(version.pk, True))
    return {"version": version.pk, "status": version.status}


@shared_task(name="recommender.train_all", soft_time_limit=300, time_limit=360, **_OPTIONS)
def train_all() -> list[int]:
    """Nightly (beat): one training run per config."""
    ids = list(RecommenderConfig.objects.values_list("pk", flat=True))
    for config_id in ids:
        version = registry.start_training(config=RecommenderConfig.objects.get(pk=config_id))
        train.delay(config_id, version.pk)
    return ids


@shared_task(name="recommender.score_all", soft_time_limit=600, time_limit=660, **_OPTIONS)
def score_all(version_id: int, promote_when_done: bool = False) -> dict:
    run = scoring.plan_scoring(version_id=version_id, promote_when_done=promote_when_done)
    chunk_ids = list(
        run.chunks.exclude(state=ScoringChunk.State.DONE).order_by("number").values_list("pk", flat=True)
    )
    for chunk_id in chunk_ids:
        score_chunk.delay(chunk_id)
    if not chunk_ids:
        finalise_scoring.delay(run.pk)
    return {"run": run.pk, "chunks": len(chunk_ids)}


@shared_task(name="recommender.score_chunk", soft_time_limit=1500, time_limit=1560, **_OPTIONS)
def score_chunk(chunk_id: int) -> dict:
    outcome = scoring.score_chunk(chunk_id=chunk_id)
    if outcome.get("run_finished"):
        run_id = ScoringChunk.objects.filter(pk=chunk_id).values_list("run_id", flat=True).first()
        if run_id is not None:
            finalise_scoring.delay(run_id)
    return outcome


@shared_task(name="recommender.finalise_scoring", soft_time_limit=600, time_limit=660, **_OPTIONS)
def finalise_scoring(run_id: int) -> dict:
    run = scoring.finalise_scoring(run_id=run_id)
    return {"run": run.pk, "status": run.status}


@shared_task(name="recommender.refresh_customers", soft_time_limit=600, time_limit=660, **_OPTIONS)
def refresh_customers(customer_ids: list[int], config_id: int | None = None) -> dict:
    return refresh.refresh_customers(customer_ids=customer_ids, config_id=config_id)


@shared_task(name="recommender.refresh_touched", soft_time_limit=600, time_limit=660, **_OPTIONS)
def refresh_touched() -> dict:
    """Every few minutes (beat): new lists for customers with new events or orders."""
    return refresh.refresh_touched()


@shared_task(name="recommender.reconcile", soft_time_limit=120, time_limit=150, **_OPTIONS)
def reconcile() -> dict:
    """Every few minutes (beat): re-enqueue training runs and chunks whose worker died or whose task was lost."""
    runs = registry.reclaim_interrupted_training()
    for config_id, version_id in runs:
        train.delay(config_id, version_id)
    chunk_ids = scoring.reclaim_expired()
    for chunk_id in chunk_ids:
        score_chunk.delay(chunk_id)
    return {"training": len(runs), "chunks": len(chunk_ids)}
