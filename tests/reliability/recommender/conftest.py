"""A real `recommender` worker on the test database, killable, stopped by its pid in teardown."""

from __future__ import annotations

import os

import pytest

from tests.integration.campaigns.real_parts import CeleryWorker

LEASE_SECONDS = 4


@pytest.fixture
def training_worker(transactional_db, settings, tmp_path):
    """Not started: the test starts it (and kills it, and starts it again)."""
    from config.celery_app import app

    media = tmp_path / "media"
    settings.MEDIA_ROOT = str(media)
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.reliability.recommender.worker_settings",
            "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "MEDIA_ROOT": str(media),
            "RECOMMENDER_SCORING_CHUNK": "100",
            "RECOMMENDER_TRAINING_LEASE_SECONDS": str(LEASE_SECONDS),
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("recommender")
    worker = CeleryWorker(env, queues="recommender", concurrency=1)
    yield worker
    worker.cleanup()
    app.conf.task_always_eager = previous
