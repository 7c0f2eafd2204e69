"""A real Celery worker on the `segments` queue for the segment tests (see campaigns/real_parts.py)."""

from __future__ import annotations

import os

import pytest

from tests.integration.campaigns.real_parts import CeleryWorker


@pytest.fixture
def start_segments_worker(settings):
    """Enqueue to the real broker; `start(concurrency=1)` runs a worker subprocess on the test database.

    Every worker started is stopped by its pid in teardown.
    """
    from config.celery_app import app

    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.integration.campaigns.worker_settings",
            "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "EMAIL_URL": "memory:",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("segments")
    workers: list[CeleryWorker] = []

    def start(concurrency: int = 1) -> CeleryWorker:
        worker = CeleryWorker(env, queues="segments", concurrency=concurrency).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.cleanup()
    app.conf.task_always_eager = previous


@pytest.fixture
def segments_worker(start_segments_worker):
    """One worker with one pool child, started."""
    return start_segments_worker()
