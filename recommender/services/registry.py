"""Training, promotion and rollback of model versions.

A version is created in ``training`` and ends ``ready`` (artifact saved, metrics measured on
a validation split carved from the training data) or ``failed`` (with the reason). Training
never touches the config's active version, so a failed run leaves the previous model serving.
Promotion and rollback switch ``RecommenderConfig.active_version`` in one UPDATE: readers
filter stored rows by the active version, so the switch is atomic for them.

A run holds a lease on its version (``lease_until``), renewed by a heartbeat thread while the
model fits. A worker killed mid-training (SIGKILL, the out-of-memory killer, a restart) leaves
the version ``training`` with a lease that runs out; ``reclaim_interrupted_training`` (from the
``recommender.reconcile`` beat task) then retries the run, or fails it with the reason once it
has been interrupted ``MAX_TRAINING_ATTEMPTS`` times, so a run never stays ``training`` forever
and a model that kills its worker is not retried forever either.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from access.services import record_audit
from recommender.engine.errors import RecommenderError, TrainingDataError
from recommender.engine.registry import get_spec, make_recommender
from recommender.engine.split import split_log
from recommender.engine.tuning import hold_out, score_on, tune
from recommender.models import ModelVersion, Recommendation, RecommenderConfig
from recommender.services import artifacts, data

logger = logging.getLogger(__name__)

METRICS_K = 10
VALIDATION_RATIO = 0.2
SEED = 42
TRAINING_LEASE_SECONDS = 300  # settings.RECOMMENDER_TRAINING_LEASE_SECONDS overrides (tests: a few s)
MAX_TRAINING_ATTEMPTS = 3
# A run enqueued (or re-enqueued) this long ago that no worker has started lost its task (a Redis
# restart, a purged queue, a busy queue: a second delivery is harmless, the lease decides).
UNSTARTED_TRAINING_AFTER = timedelta(minutes=30)


class RegistryError(ValueError):
    """A promotion or rollback that cannot be done (wrong state, nothing to go back to)."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def start_training(*, config: RecommenderConfig) -> ModelVersion:
    """The ``training`` row a run fills in (created before the task runs, so the API can show it)."""
    return ModelVersion.objects.create(
        config=config, algorithm=config.algorithm, params=_jsonable(config.params or {})
    )


def train(
    *,
    config_id: int,
    version_id: int | None = None,
    validate: bool = True,
    num_threads: int = 0,
    actor=None,
) -> ModelVersion:
    """Fit the config's algorithm on every customer's history; never raises for bad data.

    The returned version is ``ready`` or ``failed`` (``error`` says why: an empty or one-customer
    training set, an unknown algorithm, a crash in the algorithm).
    """
    config = RecommenderConfig.objects.get(pk=config_id)
    if version_id is None:
        version = start_training(config=config)
    else:
        version = ModelVersion.objects.select_related("config").get(pk=version_id, config=config)
        if version.status != ModelVersion.Status.TRAINING:
            return version  # a re-delivered task: this run already finished
    if not _take_lease(version.pk):
        # Another worker holds a live lease (a task delivered twice), the run finished meanwhile,
        # or it was interrupted too often and has just been failed: nothing to do here.
        version.refresh_from_db()
        return version
    heartbeat = _LeaseHeartbeat(version.pk)
    heartbeat.start()
    try:
        _fit_version(version=version, config=config, validate=validate, num_threads=num_threads)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a visible state
        message = str(exc) if isinstance(exc, RecommenderError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, RecommenderError):
            logger.error("training of version %s failed\n%s", version.pk, traceback.format_exc())
        ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.Status.TRAINING).update(
            status=ModelVersion.Status.FAILED, error=message[:4000], lease_until=None
        )
    finally:
        heartbeat.stop()
    version.refresh_from_db()
    record_audit(
        actor=actor,
        action="recommender.trained",
        target=version,
        details={"status": version.status, "algorithm": version.algorithm, "error": version.error[:200]},
    )
    return version


def _fit_version(
    *, version: ModelVersion, config: RecommenderConfig, validate: bool, num_threads: int
) -> None:
    raw = data.read_raw_interactions()
    if not len(raw) or not raw.positive.any():
        raise TrainingDataError(
            "the training set is empty: no customer has bought, viewed or carted a product"
        )
    if len(np.unique(raw.customers[raw.positive])) < 2:
        raise TrainingDataError(
            "the training set has a single customer: recommendations need at least two customers"
        )
    catalog = data.product_catalog()
    algorithm, params = config.algorithm, dict(config.params or {})
    metrics: dict[str, Any] = {}
    if algorithm == "auto":
        tuning = tune(raw.log(), k=METRICS_K, seed=SEED, num_threads=max(num_threads, 1), catalog=catalog)
        algorithm, params = tuning.algorithm, dict(tuning.params)
        metrics["auto"] = {
            "validation_ndcg": tuning.validation_ndcg,
            "best_per_algorithm": {name: t.validation_ndcg for name, t in tuning.best_per_algorithm.items()},
        }
    spec = get_spec(algorithm)
    params = {**spec.defaults, **params}
    if validate:
        metrics.update(_validation_metrics(raw, catalog, algorithm, params, num_threads))
    interactions = data.weighted_interactions(raw, item_universe=catalog.item_ids)
    model = make_recommender(algorithm, params, num_threads=num_threads, seed=SEED)
    started = time.perf_counter()
    model.fit(interactions, catalog=catalog)
    fit_seconds = time.perf_counter() - started
    version.algorithm = algorithm
    version.params = _jsonable(model.params)
    version.metrics = _jsonable(metrics)
    version.n_customers = interactions.n_users
    version.n_products = interactions.n_items
    version.n_interactions = int(interactions.matrix.nnz)
    version.fit_seconds = round(fit_seconds, 3)
    artifacts.save_artifact(version=version, model=model)
    with transaction.atomic():
        # Only a run that still owns its version finishes it: one the reconciler gave up on (its
        # lease ran out while this worker was alive but cut off) stays failed.
        current = (
            ModelVersion.objects.select_for_update()
            .filter(pk=version.pk)
            .values_list("status", flat=True)
            .first()
        )
        if current != ModelVersion.Status.TRAINING:
            logger.warning(
                "version %s was %s before its training finished; result dropped", version.pk, current
            )
            return
        version.status = ModelVersion.Status.READY
        version.trained_at = timezone.now()
        version.error = ""
        version.lease_until = None
        version.save(
            update_fields=[
                "algorithm",
                "params",
                "metrics",
                "n_customers",
                "n_products",
                "n_interactions",
                "fit_seconds",
                "artifact",
                "status",
                "trained_at",
                "error",
                "lease_until",
            ]
        )


# --- leases of training runs ----------------------------------------------------------------


def training_lease() -> timedelta:
    return timedelta(
        seconds=float(getattr(settings, "RECOMMENDER_TRAINING_LEASE_SECONDS", TRAINING_LEASE_SECONDS))
    )


def _take_lease(version_id: int) -> bool:
    """Start a run of the version with one conditional UPDATE: of two deliveries, one wins."""
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    training = ModelVersion.objects.filter(free, pk=version_id, status=ModelVersion.Status.TRAINING)
    if training.filter(attempts__lt=MAX_TRAINING_ATTEMPTS).update(
        lease_until=now + training_lease(), attempts=F("attempts") + 1
    ):
        return True
    _give_up(training.filter(attempts__gte=MAX_TRAINING_ATTEMPTS))
    return False


def _give_up(versions) -> int:
    return versions.update(
        status=ModelVersion.Status.FAILED,
        lease_until=None,
        error=(
            f"training was interrupted {MAX_TRAINING_ATTEMPTS} times: the worker running it stopped "
            "(killed, out of memory or restarted) before it finished; not retried again"
        ),
    )


class _LeaseHeartbeat:
    """Renews the version's lease from a thread (and its own connection) while the model fits.

    The fit is one long call into numpy/scipy/implicit that cannot stop to renew anything; a
    thread can, and it dies with the worker, which is what lets the lease run out then.
    """

    def __init__(self, version_id: int) -> None:
        self.version_id = version_id
        self.lease = training_lease()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"lease-version-{version_id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        interval = max(self.lease.total_seconds() / 5, 0.2)
        try:
            while not self.stopped.wait(interval):
                try:
                    ModelVersion.objects.filter(
                        pk=self.version_id, status=ModelVersion.Status.TRAINING
                    ).update(lease_until=timezone.now() + self.lease)
                except Exception:  # noqa: BLE001 - a missed beat is retried; the lease has slack
                    logger.warning("could not renew the lease of version %s", self.version_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()


def reclaim_interrupted_training(*, now=None) -> list[tuple[int, int]]:
    """Versions whose training worker died, or whose task never started: (config, version) to run again.

    Each is noted (``error`` says what happened, the audit log records it) and handed back to be
    enqueued; one interrupted ``MAX_TRAINING_ATTEMPTS`` times is failed with the reason instead.
    The previous active version is never touched, so it keeps serving throughout.
    """
    now = now or timezone.now()
    training = ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING)
    expired = training.filter(lease_until__lt=now)
    for version in expired.filter(attempts__gte=MAX_TRAINING_ATTEMPTS):
        if _give_up(expired.filter(pk=version.pk, attempts__gte=MAX_TRAINING_ATTEMPTS)):
            record_audit(
                actor=None,
                action="recommender.training_abandoned",
                target=version,
                details={"attempts": version.attempts, "lease_until": version.lease_until.isoformat()},
            )
    retry: list[tuple[int, int]] = []
    for version in expired.filter(attempts__lt=MAX_TRAINING_ATTEMPTS):
        note = (
            f"attempt {version.attempts} interrupted: the worker stopped before it finished "
            f"(lease expired {version.lease_until:%Y-%m-%d %H:%M:%S} UTC); retrying"
        )
        # The dead worker's lease is released, so the retry (or the killed task's message, should
        # Redis deliver it again) can take the run at once.
        if expired.filter(pk=version.pk, lease_until=version.lease_until).update(
            error=note, lease_until=None, requeued_at=now
        ):
            record_audit(
                actor=None,
                action="recommender.training_interrupted",
                target=version,
                details={"attempts": version.attempts, "lease_until": version.lease_until.isoformat()},
            )
            retry.append((version.config_id, version.pk))
    waiting = training.filter(lease_until__isnull=True).alias(
        waiting_since=Coalesce("requeued_at", "created_at")
    )
    lost = list(
        waiting.filter(waiting_since__lt=now - UNSTARTED_TRAINING_AFTER).values_list("config_id", "pk")
    )
    ModelVersion.objects.filter(pk__in=[pk for _, pk in lost], lease_until__isnull=True).update(
        requeued_at=now
    )
    return retry + lost


def _validation_metrics(raw, catalog, algorithm: str, params: dict, num_threads: int) -> dict[str, Any]:
    """Metrics of the same algorithm fitted on 80 % of each customer's interactions."""
    log = raw.log()
    sub_train, validation = split_log(log, method="user-random", test_ratio=VALIDATION_RATIO, seed=SEED)
    held = hold_out(sub_train, validation, catalog=catalog)
    if not held.users.size:
        return {"validation": "too few interactions to hold any out"}
    model = make_recommender(algorithm, params, num_threads=num_threads, seed=SEED)
    model.fit(held.train, catalog=catalog)
    report = score_on(model, held, METRICS_K, full_report=True)
    report["validation_customers"] = int(held.users.size)
    return report


# --- promotion ------------------------------------------------------------------------------


def has_stored_rows(version: ModelVersion) -> bool:
    return version.scored_at is not None or Recommendation.objects.filter(model_version=version).exists()


@transaction.atomic
def promote(*, version_id: int, actor=None, api_key=None, score_if_needed: bool = True) -> ModelVersion:
    """Make a ready version the active one of its config; the previous one is kept for rollback."""
    version = ModelVersion.objects.select_for_update().select_related("config").get(pk=version_id)
    config = RecommenderConfig.objects.select_for_update().get(pk=version.config_id)
    if version.status != ModelVersion.Status.READY and version.status != ModelVersion.Status.RETIRED:
        raise RegistryError(f"only a ready model can be promoted; version {version.pk} is {version.status}")
    if not version.artifact:
        raise RegistryError(f"version {version.pk} has no artifact")
    if config.active_version_id == version.pk:
        return version
    previous = config.active_version_id
    if version.status == ModelVersion.Status.RETIRED:
        version.status = ModelVersion.Status.READY
    version.previous_version_id = previous
    version.promoted_at = timezone.now()
    version.save(update_fields=["status", "previous_version", "promoted_at"])
    RecommenderConfig.objects.filter(pk=config.pk).update(active_version=version, updated_at=timezone.now())
    record_audit(
        actor=actor,
        api_key=api_key,
        action="recommender.promoted",
        target=version,
        details={"config": config.name, "previous_version": previous},
    )
    if score_if_needed and not has_stored_rows(version):
        from recommender.tasks import score_all as score_all_task

        transaction.on_commit(lambda: score_all_task.delay(version.pk, False))
    return version


@transaction.atomic
def rollback(*, config_id: int, actor=None, api_key=None) -> ModelVersion:
    """Go back to the version that was active before the current one."""
    config = RecommenderConfig.objects.select_for_update().get(pk=config_id)
    current = config.active_version
    if current is None:
        raise RegistryError(f"config {config.name!r} has no active model to roll back from")
    target = current.previous_version
    if target is None or target.status not in (ModelVersion.Status.READY, ModelVersion.Status.RETIRED):
        raise RegistryError(f"config {config.name!r} has no previous model to roll back to")
    RecommenderConfig.objects.filter(pk=config.pk).update(active_version=target, updated_at=timezone.now())
    ModelVersion.objects.filter(pk=current.pk).update(status=ModelVersion.Status.RETIRED)
    ModelVersion.objects.filter(pk=target.pk).update(status=ModelVersion.Status.READY)
    record_audit(
        actor=actor,
        api_key=api_key,
        action="recommender.rolled_back",
        target=target,
        details={"config": config.name, "from_version": current.pk},
    )
    target.refresh_from_db()
    if not has_stored_rows(target):
        from recommender.tasks import score_all as score_all_task

        transaction.on_commit(lambda: score_all_task.delay(target.pk, False))
    return target
