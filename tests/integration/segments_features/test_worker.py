"""The analytics tasks on a real Celery worker process (queue `segments`), started and stopped by pid."""

from __future__ import annotations

import os
import time

import pytest
from django.conf import settings as django_settings

from segments.features import tasks
from segments.features.models import AnalyticsRun
from segments.models import CustomerFeatures, Segment, SegmentMembership
from tests.integration.campaigns.real_parts import CeleryWorker
from tests.integration.segments_features.conftest import CDNOW_CALIBRATION_END, load_cdnow_orders

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _worker_env() -> dict[str, str]:
    db = django_settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.integration.campaigns.worker_settings",
            "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
            "EMAIL_URL": "console://",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    return env


@pytest.fixture
def segments_worker():
    worker = CeleryWorker(_worker_env(), queues="segments").start()
    yield worker
    worker.cleanup()


@pytest.fixture
def real_celery(settings):
    from config.celery_app import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    yield app
    app.conf.task_always_eager = previous


def _wait_for_runs(count: int, timeout: float, worker: CeleryWorker) -> list[AnalyticsRun]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list(AnalyticsRun.objects.exclude(state=AnalyticsRun.State.RUNNING).order_by("id"))
        if len(runs) >= count:
            return runs
        assert worker.alive, worker.output()[-4000:]
        time.sleep(0.5)
    raise AssertionError(f"runs did not finish in time:\n{worker.output()[-4000:]}")


def _wait_until_members(segment, wanted: set[int], worker: CeleryWorker, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = set(
            SegmentMembership.objects.filter(segment=segment, exited_at=None).values_list(
                "customer_id", flat=True
            )
        )
        if current == wanted:
            return True
        assert worker.alive, worker.output()[-4000:]
        time.sleep(0.5)
    raise AssertionError(f"members never matched the night's groups:\n{worker.output()[-4000:]}")


def test_pipeline_runs_on_a_real_worker_and_is_safe_to_repeat(real_celery, segments_worker):
    load_cdnow_orders()
    stamp = CDNOW_CALIBRATION_END.isoformat()
    # A segment on the groups the night computes: refreshed at the end of the chain.
    champions = Segment.objects.create(
        name="champions", rules={"field": "rfm.group", "op": "eq", "value": "Champions"}
    )
    tasks.analytics_pipeline.delay(stamp)
    runs = _wait_for_runs(3, 240, segments_worker)
    assert [(r.kind, r.state) for r in runs] == [
        ("features", "succeeded"),
        ("clusters", "succeeded"),
        ("clv", "succeeded"),
    ], [(r.kind, r.state, r.error) for r in runs]
    assert runs[2].summary["bgnbd"]["r"] == pytest.approx(0.243, abs=1e-3)
    values = list(
        CustomerFeatures.objects.order_by("customer_id").values_list("rfm_group", "cluster", "p_alive")
    )
    assert len(values) == 2357 and all(v[2] is not None for v in values)
    output = segments_worker.output()
    for name in (
        "segments.analytics_pipeline",
        "segments.compute_features",
        "segments.compute_clusters",
        "segments.compute_clv",
    ):
        assert f"Task {name}[" in output and "succeeded" in output
    wanted = set(CustomerFeatures.objects.filter(rfm_group="Champions").values_list("customer_id", flat=True))
    assert wanted and _wait_until_members(champions, wanted, segments_worker)
    assert "Task segments.refresh_all[" in segments_worker.output()

    # Delivered again (a retry, a second click): the same values, nothing doubled.
    tasks.analytics_pipeline.delay(stamp)
    runs = _wait_for_runs(6, 240, segments_worker)
    assert all(r.state == "succeeded" for r in runs)
    assert CustomerFeatures.objects.count() == 2357
    assert (
        list(CustomerFeatures.objects.order_by("customer_id").values_list("rfm_group", "cluster", "p_alive"))
        == values
    )


def test_nightly_schedule_and_routing():
    schedule = django_settings.CELERY_BEAT_SCHEDULE["segments.analytics_pipeline"]
    assert schedule["task"] == "segments.analytics_pipeline"
    from config.celery_app import app

    for name in (
        "segments.compute_features",
        "segments.compute_clusters",
        "segments.compute_clv",
        "segments.analytics_pipeline",
    ):
        task = app.tasks[name]
        assert task.acks_late and app.amqp.router.route({}, name)["queue"].name == "segments"
