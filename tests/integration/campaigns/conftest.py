"""Fixtures with real parts for the campaign tests (see real_parts.py)."""

from __future__ import annotations

import os

import pytest

from tests.integration.campaigns.real_parts import CeleryWorker, PushReceiver, SmtpSink


@pytest.fixture
def smtp_sink():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def send_settings(settings, smtp_sink):
    """In-process sends go to the sink over SMTP; small chunks, short leases, no backoff waits."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_sink.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
    settings.CAMPAIGN_CHUNK_SIZE = 50
    settings.CAMPAIGN_RETRY_BASE_SECONDS = 1
    settings.CAMPAIGN_SEND_RATES = {}
    settings.CAMPAIGN_GLOBAL_HOLDOUT_PERCENT = 0
    settings.CAMPAIGN_MACHINE_OPEN_SECONDS = 0
    settings.SITE_URL = "https://testserver"  # one-click unsubscribe links must be https (RFC 8058)
    return settings


@pytest.fixture
def push_receiver():
    receiver = PushReceiver().start()
    yield receiver
    receiver.stop()


def worker_env(settings, *, email_url: str, redis_url: str | None = None, **extra) -> dict[str, str]:
    """The environment of a worker subprocess: the test database, our Redis dbs, the sink."""
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.integration.campaigns.worker_settings",
            "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "SITE_URL": "https://testserver",
            "EMAIL_URL": email_url,
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
        env["CELERY_BROKER_URL"] = redis_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def real_celery(settings):
    """Make this process enqueue to the real broker instead of running tasks eagerly."""
    from config.celery_app import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    yield app
    app.conf.task_always_eager = previous


@pytest.fixture
def start_worker():
    workers: list[CeleryWorker] = []

    def start(env, **kwargs) -> CeleryWorker:
        worker = CeleryWorker(env, **kwargs).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.cleanup()
