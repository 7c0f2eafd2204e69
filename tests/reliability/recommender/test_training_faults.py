"""A training run whose worker is SIGKILLed mid-training: the active model keeps serving, the run is
retried by the reconciler (its lease ran out) and completes; nothing is left `training` forever.

Real parts: PostgreSQL, the Redis broker, a `celery worker` process group killed with SIGKILL.
"""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from access.models import AuditEntry
from recommender.models import ModelVersion, RecommenderConfig
from tests.integration.campaigns.real_parts import wait_until
from tests.reliability.recommender.scenario import model_serving, start_slow_training

pytestmark = pytest.mark.slow


def test_training_killed_midway_keeps_the_active_model_and_is_retried(training_worker, make_api_client):
    from recommender import tasks

    serving = model_serving(make_api_client)
    config, v1, served = serving.config, serving.v1, serving.served
    assert RecommenderConfig.objects.get(pk=config.pk).active_version_id == v1.pk
    before = served()
    assert all(
        b["model_version"] == v1.pk and b["source"] == "stored" and len(b["items"]) == 5
        for b in before.values()
    )

    # A slow run (the nightly path: the version row first, then the task), killed mid-run.
    v2 = start_slow_training(config)
    training_worker.start()
    wait_until(
        lambda: ModelVersion.objects.filter(pk=v2.pk, attempts=1, lease_until__isnull=False).exists(),
        120,
        "the worker to start training",
        training_worker,
    )
    time.sleep(0.5)  # inside the run: reading the history or fitting (two fits of seconds each)
    assert ModelVersion.objects.get(pk=v2.pk).status == ModelVersion.Status.TRAINING
    training_worker.kill()
    killed = time.monotonic()

    v2.refresh_from_db()
    assert v2.status == ModelVersion.Status.TRAINING and v2.attempts == 1 and not v2.artifact
    assert RecommenderConfig.objects.get(pk=config.pk).active_version_id == v1.pk
    assert served() == before  # the same model, the same lists

    # Nobody renews the lease now; once it has run out the reconciler notes the interruption
    # and enqueues the run again (the killed task's message stays unacked in Redis until its
    # visibility timeout; should it come back, the lease decides who runs).
    wait_until(
        lambda: ModelVersion.objects.get(pk=v2.pk).lease_until < timezone.now(),
        30,
        "the dead worker's lease to run out",
    )
    lease_ran_out = time.monotonic() - killed
    assert tasks.reconcile.apply().get() == {"training": 1, "chunks": 0}
    v2.refresh_from_db()
    assert v2.status == ModelVersion.Status.TRAINING
    assert v2.error.startswith("attempt 1 interrupted: the worker stopped before it finished"), v2.error
    assert AuditEntry.objects.filter(action="recommender.training_interrupted", target_id=str(v2.pk)).exists()
    assert tasks.reconcile.apply().get() == {"training": 0, "chunks": 0}  # noted once, enqueued once
    assert served() == before

    # A worker again: the retried run trains, is scored and promoted.
    retry_started = time.monotonic()
    training_worker.start()
    wait_until(
        lambda: RecommenderConfig.objects.get(pk=config.pk).active_version_id == v2.pk,
        300,
        "the retried run to be promoted",
        training_worker,
    )
    retried_seconds = time.monotonic() - retry_started
    v2.refresh_from_db()
    assert v2.status == ModelVersion.Status.READY and v2.attempts == 2
    assert v2.error == "" and v2.lease_until is None and v2.algorithm == "als"
    assert v2.previous_version_id == v1.pk  # rollback still goes back to the model that served
    after = served()
    assert all(
        a["model_version"] == v2.pk and a["source"] == "stored" and len(a["items"]) == 5
        for a in after.values()
    )
    assert not ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING).exists()
    print(
        f"\nFIGURE training kill: SIGKILL mid-run; lease ran out {lease_ran_out:.1f} s after the kill; "
        f"the retried run was promoted {retried_seconds:.1f} s after the worker restarted "
        f"(fit {v2.fit_seconds} s, attempts {v2.attempts}); v1 served the same lists until then"
    )
