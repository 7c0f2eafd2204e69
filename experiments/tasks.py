"""Celery tasks of experiments: thin, id-taking, safe to run twice (the experiment's state decides)."""

from __future__ import annotations

from celery import shared_task

_TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="experiments.decide_due", soft_time_limit=240, time_limit=280, **_TASK_OPTIONS)
def decide_due() -> dict:
    """Every minute (beat): decide the test-then-send experiments whose window has passed."""
    from experiments.services.decision import decide_due as run

    return run()


@shared_task(name="experiments.decide", soft_time_limit=240, time_limit=280, **_TASK_OPTIONS)
def decide(experiment_id: int) -> bool:
    """Decide one experiment now if its window has passed (the admin's "decide now" uses force)."""
    from experiments.services.decision import decide_experiment

    return decide_experiment(experiment_id=experiment_id)
