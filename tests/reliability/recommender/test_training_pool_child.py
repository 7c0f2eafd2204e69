"""Training whose pool child is SIGKILLed mid-fit (the out-of-memory killer), the main worker living on.

Unlike the whole-worker kill in test_training_faults.py, Celery's main process sees its child
lost (WorkerLostError) and, with `acks_late` and `reject_on_worker_lost`, puts the message back
at once: a new pool child runs `recommender.train` again within a second. That second delivery
must not start a second fit while the dead child's lease still runs (the lease decides, not the
broker), the active model must keep serving, and once the lease has run out the reconciler
retries the run on the same, never restarted, worker.
"""

from __future__ import annotations

import re
import time

import psutil
import pytest
from django.utils import timezone

from access.models import AuditEntry
from recommender.models import ModelVersion, RecommenderConfig
from tests.integration.campaigns.real_parts import wait_until
from tests.reliability.recommender.scenario import model_serving, start_slow_training

pytestmark = pytest.mark.slow

# Longer than the other fault test's 4 s, so that the requeued message is surely back (a new
# child forks and runs it in about a second) before the dead child's lease runs out.
LEASE_SECONDS = 10
# CPU seconds the child has spent since it took the lease: reading 300 customers' history takes
# a fraction of this, so past it the child is inside the ALS fits.
CPU_INTO_THE_FIT = 0.6


def train_deliveries(log: str) -> dict[str, int]:
    ids = re.findall(r"Task recommender\.train\[([0-9a-f-]+)\] received", log)
    return {task_id: ids.count(task_id) for task_id in ids}


def finished_train_runs(log: str) -> list[str]:
    """The return values of the train runs that finished, in order."""
    return re.findall(r"Task recommender\.train\[[0-9a-f-]+\] succeeded in [0-9.]+s: (\{.*\})", log)


def test_pool_child_killed_mid_fit_keeps_the_active_model_and_is_retried(training_worker, make_api_client):
    from recommender import tasks

    serving = model_serving(make_api_client)
    config, v1, served = serving.config, serving.v1, serving.served
    before = served()
    assert all(b["model_version"] == v1.pk and len(b["items"]) == 5 for b in before.values())

    v2 = start_slow_training(config)
    training_worker.env["RECOMMENDER_TRAINING_LEASE_SECONDS"] = str(LEASE_SECONDS)
    training_worker.start()
    main_pid = training_worker.process.pid
    wait_until(
        lambda: ModelVersion.objects.filter(pk=v2.pk, attempts=1, lease_until__isnull=False).exists(),
        120,
        "the worker to start training",
        training_worker,
    )
    (child,) = training_worker.pool_pids()  # concurrency 1: the child running the fit
    process = psutil.Process(child)
    base = sum(process.cpu_times()[:2])
    wait_until(
        lambda: sum(process.cpu_times()[:2]) - base >= CPU_INTO_THE_FIT,
        60,
        "the child to be fitting",
        training_worker,
    )
    assert ModelVersion.objects.get(pk=v2.pk).status == ModelVersion.Status.TRAINING
    training_worker.kill_pool_child(child)
    killed = time.monotonic()

    # The main process lives, replaces the child, and gets the message back from the broker: the
    # second delivery finds the dead child's lease still running and trains nothing.
    wait_until(
        lambda: len(finished_train_runs(training_worker.output())) >= 1,
        60,
        "the requeued train message to be run again",
        training_worker,
    )
    redelivered = time.monotonic() - killed
    log = training_worker.output()
    assert "WorkerLostError" in log
    assert list(train_deliveries(log).values()) == [2], train_deliveries(log)
    assert finished_train_runs(log) == [f"{{'version': {v2.pk}, 'status': 'training'}}"]
    v2.refresh_from_db()
    assert v2.status == ModelVersion.Status.TRAINING and v2.attempts == 1 and not v2.artifact
    assert v2.lease_until > timezone.now(), "the requeued message came back after the lease ran out"
    assert training_worker.alive and training_worker.process.pid == main_pid
    assert len(training_worker.pool_pids()) == 1 and child not in training_worker.pool_pids()
    assert RecommenderConfig.objects.get(pk=config.pk).active_version_id == v1.pk
    assert served() == before

    # Nobody renews the lease; once it has run out the reconciler (beat, every few minutes)
    # notes the interruption and enqueues the run once; the same worker trains and promotes it.
    wait_until(
        lambda: ModelVersion.objects.get(pk=v2.pk).lease_until < timezone.now(), 60, "the lease to run out"
    )
    lease_ran_out = time.monotonic() - killed
    assert served() == before
    assert tasks.reconcile.apply().get() == {"training": 1, "chunks": 0}
    v2.refresh_from_db()
    assert v2.error.startswith("attempt 1 interrupted: the worker stopped before it finished"), v2.error
    assert AuditEntry.objects.filter(action="recommender.training_interrupted", target_id=str(v2.pk)).exists()
    assert tasks.reconcile.apply().get() == {"training": 0, "chunks": 0}
    wait_until(
        lambda: RecommenderConfig.objects.get(pk=config.pk).active_version_id == v2.pk,
        300,
        "the retried run to be promoted",
        training_worker,
    )
    promoted = time.monotonic() - killed
    v2.refresh_from_db()
    assert v2.status == ModelVersion.Status.READY and v2.attempts == 2
    assert v2.error == "" and v2.lease_until is None and v2.previous_version_id == v1.pk
    assert all(a["model_version"] == v2.pk and len(a["items"]) == 5 for a in served().values())
    assert not ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING).exists()
    assert training_worker.alive and training_worker.process.pid == main_pid and training_worker.starts == 1
    print(
        f"\nFIGURE training pool-child kill: child {child} SIGKILLed mid-fit, main process {main_pid} "
        f"alive throughout; the requeued message ran again {redelivered:.1f} s after the kill and "
        f"trained nothing (lease held); lease ran out {lease_ran_out:.1f} s after the kill "
        f"(lease {LEASE_SECONDS} s); the reconciled retry promoted {promoted:.1f} s after the kill "
        f"(fit {v2.fit_seconds} s, attempts {v2.attempts}); v1 served the same lists until then"
    )
