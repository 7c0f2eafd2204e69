"""A real Celery worker on the `segments` queue for the segment tests (see campaigns/real_parts.py)."""

from __future__ import annotations

import pytest

from tests.integration.campaigns.conftest import real_celery, start_worker, worker_env  # noqa: F401


@pytest.fixture
def start_segments_worker(settings, real_celery, start_worker):  # noqa: F811 - the imported fixtures
    """`start(concurrency=1)` runs a worker subprocess on the test database, stopped by its pid in teardown."""
    env = worker_env(settings, email_url="memory:", CELERY_BROKER_URL=settings.CELERY_BROKER_URL)
    with real_celery.connection_for_write() as conn:
        conn.default_channel.queue_purge("segments")

    def start(concurrency: int = 1):
        return start_worker(env, queues="segments", concurrency=concurrency)

    return start


@pytest.fixture
def segments_worker(start_segments_worker):
    """One worker with one pool child, started."""
    return start_segments_worker()
