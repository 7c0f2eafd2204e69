"""The training reconciler's decisions, on database states a killed or lost run leaves behind.

(The kill itself, with a real worker, is in test_training_faults.py.)
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recommender.models import ModelVersion, RecommenderConfig
from recommender.services import registry

pytestmark = pytest.mark.django_db


@pytest.fixture
def config(db):
    return RecommenderConfig.objects.create(name="default", algorithm="popularity", is_default=True)


def _version(config, **fields) -> ModelVersion:
    version = registry.start_training(config=config)
    ModelVersion.objects.filter(pk=version.pk).update(**fields)
    version.refresh_from_db()
    return version


def test_a_live_lease_is_left_alone_and_an_expired_one_is_retried(config):
    now = timezone.now()
    alive = _version(config, attempts=1, lease_until=now + timedelta(seconds=30))
    dead = _version(config, attempts=1, lease_until=now - timedelta(seconds=1))

    assert registry.reclaim_interrupted_training(now=now) == [(config.pk, dead.pk)]

    alive.refresh_from_db()
    dead.refresh_from_db()
    assert alive.status == "training" and alive.error == "" and alive.lease_until is not None
    assert dead.status == "training" and dead.lease_until is None and dead.requeued_at == now
    assert dead.error.startswith("attempt 1 interrupted: the worker stopped before it finished")
    # Enqueued once: the next pass (before the retry starts) does not enqueue it again.
    assert registry.reclaim_interrupted_training(now=now + timedelta(seconds=10)) == []


def test_interrupted_three_times_is_failed_with_the_reason_and_the_active_model_stays(config):
    active = _version(config, status="ready")
    RecommenderConfig.objects.filter(pk=config.pk).update(active_version=active)
    doomed = _version(
        config, attempts=registry.MAX_TRAINING_ATTEMPTS, lease_until=timezone.now() - timedelta(1)
    )

    assert registry.reclaim_interrupted_training() == []

    doomed.refresh_from_db()
    assert doomed.status == "failed" and doomed.lease_until is None
    assert "interrupted 3 times" in doomed.error and "not retried again" in doomed.error
    assert RecommenderConfig.objects.get(pk=config.pk).active_version_id == active.pk
    # A late delivery of its task does not start it again.
    assert registry.train(config_id=config.pk, version_id=doomed.pk).status == "failed"


def test_a_run_whose_task_was_lost_is_enqueued_again(config):
    now = timezone.now()
    fresh = _version(config)
    lost = _version(config)
    ModelVersion.objects.filter(pk=lost.pk).update(created_at=now - registry.UNSTARTED_TRAINING_AFTER * 2)

    assert registry.reclaim_interrupted_training(now=now) == [(config.pk, lost.pk)]
    assert registry.reclaim_interrupted_training(now=now) == []  # not again until the wait passes
    assert ModelVersion.objects.get(pk=fresh.pk).requeued_at is None


def test_a_second_delivery_while_the_run_holds_its_lease_does_nothing(config):
    busy = _version(config, attempts=1, lease_until=timezone.now() + timedelta(minutes=5))

    returned = registry.train(config_id=config.pk, version_id=busy.pk)

    assert returned.status == "training" and returned.attempts == 1  # not trained twice


def test_a_run_takes_its_lease_and_releases_it_when_done(config, media_root):
    from tests.integration.recommender.shop import build_shop

    build_shop(customers=6)
    version = registry.start_training(config=config)

    trained = registry.train(config_id=config.pk, version_id=version.pk)

    assert trained.status == "ready" and trained.attempts == 1 and trained.lease_until is None


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
