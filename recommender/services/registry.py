"""Training, promotion and rollback of model versions.

A version is created in ``training`` and ends ``ready`` (artifact saved, metrics measured on
a validation split carved from the training data) or ``failed`` (with the reason). Training
never touches the config's active version, so a failed run leaves the previous model serving.
Promotion and rollback switch ``RecommenderConfig.active_version`` in one UPDATE: readers
filter stored rows by the active version, so the switch is atomic for them.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import numpy as np
from django.db import transaction
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
    try:
        _fit_version(version=version, config=config, validate=validate, num_threads=num_threads)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a visible state
        message = str(exc) if isinstance(exc, RecommenderError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, RecommenderError):
            logger.error("training of version %s failed\n%s", version.pk, traceback.format_exc())
        ModelVersion.objects.filter(pk=version.pk).update(
            status=ModelVersion.Status.FAILED, error=message[:4000]
        )
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
    version.status = ModelVersion.Status.READY
    version.trained_at = timezone.now()
    version.error = ""
    version.save()


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
