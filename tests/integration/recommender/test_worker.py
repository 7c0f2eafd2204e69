"""The Celery path with a real worker process: train → fan-out scoring → finaliser → promotion."""

from __future__ import annotations

import os
import time

import pytest

from recommender.models import ModelVersion, Recommendation, RecommenderConfig, ScoringRun
from tests.integration.campaigns.real_parts import CeleryWorker
from tests.integration.recommender.shop import build_shop


def _wait(predicate, timeout: float, worker: CeleryWorker, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if not worker.alive:
            raise AssertionError(f"worker died while waiting for {what}:\n{worker.output()[-4000:]}")
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{worker.output()[-4000:]}")


@pytest.fixture
def worker(transactional_db, settings, tmp_path):
    from config.celery_app import app

    media = tmp_path / "media"
    settings.MEDIA_ROOT = str(media)
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.integration.recommender.worker_settings",
            "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "MEDIA_ROOT": str(media),
            "RECOMMENDER_SCORING_CHUNK": "25",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.control.purge()
    process = CeleryWorker(env, queues="recommender", concurrency=2).start()
    yield process
    process.cleanup()
    app.conf.task_always_eager = previous


def test_train_scores_and_promotes_through_a_real_worker(worker):
    from recommender import tasks

    build_shop()
    config = RecommenderConfig.objects.create(
        name="default", algorithm="item_knn", params={"neighbours": 20}, is_default=True, items_per_customer=5
    )
    tasks.train.delay(config.pk)
    active = _wait(
        lambda: (
            RecommenderConfig.objects.filter(pk=config.pk).values_list("active_version_id", flat=True).first()
        ),
        180,
        worker,
        "the trained version to be promoted",
    )
    version = ModelVersion.objects.get(pk=active)
    assert version.status == ModelVersion.Status.READY and version.scored_at is not None
    run = ScoringRun.objects.get(model_version=version)
    assert run.status == ScoringRun.Status.DONE and run.chunks_total == 3  # 60 customers in chunks of 25
    assert Recommendation.objects.filter(model_version=version).count() == 300

    # The same fan-out enqueued twice (a re-delivered task): rows are replaced, never doubled.
    tasks.score_all.delay(version.pk)
    tasks.score_all.delay(version.pk)
    _wait(
        lambda: (
            ScoringRun.objects.filter(model_version=version, status=ScoringRun.Status.DONE).count() >= 2
            and not ScoringRun.objects.filter(
                model_version=version, status=ScoringRun.Status.RUNNING
            ).exists()
        ),
        120,
        worker,
        "the second scoring run",
    )
    assert Recommendation.objects.filter(model_version=version).count() == 300
    assert "recommender.score_chunk" in worker.output()


def test_failed_training_in_the_worker_keeps_the_active_version(worker):
    from recommender import tasks

    build_shop(customers=1)
    config = RecommenderConfig.objects.create(name="default", algorithm="item_knn", is_default=True)
    tasks.train.delay(config.pk)
    failed = _wait(
        lambda: ModelVersion.objects.filter(config=config, status=ModelVersion.Status.FAILED).first(),
        120,
        worker,
        "the failed version",
    )
    assert "single customer" in failed.error
    assert RecommenderConfig.objects.get(pk=config.pk).active_version_id is None
