"""Celery tasks of the customer analytics, on the `segments` queue (routed by their `segments.` names).

Each task recomputes everything it owns from the database and writes it in one transaction, so a
re-delivered or repeated task only writes the same values again. Arguments are plain: an
optional ISO timestamp for the end of the history, never customer data.
"""

from __future__ import annotations

from datetime import datetime

from celery import chain, shared_task

from segments.features import services

_TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


def _parse(as_of: str | None) -> datetime | None:
    return datetime.fromisoformat(as_of) if as_of else None


@shared_task(name="segments.compute_features", soft_time_limit=1500, time_limit=1800, **_TASK_OPTIONS)
def compute_features(as_of: str | None = None) -> int:
    """Order features, RFM scores and groups of every customer; returns the run id."""
    return services.compute_features(as_of=_parse(as_of)).pk


@shared_task(name="segments.compute_clusters", soft_time_limit=1500, time_limit=1800, **_TASK_OPTIONS)
def compute_clusters() -> int:
    """k-means clusters on the stored features; returns the run id."""
    return services.compute_clusters().pk


@shared_task(name="segments.compute_clv", soft_time_limit=1500, time_limit=1800, **_TASK_OPTIONS)
def compute_clv(as_of: str | None = None) -> int:
    """BG/NBD and Gamma-Gamma fit, P(alive), churn, expected purchases and CLV; returns the run id."""
    return services.compute_clv(as_of=_parse(as_of)).pk


@shared_task(name="segments.analytics_pipeline", soft_time_limit=50, time_limit=60, **_TASK_OPTIONS)
def analytics_pipeline(as_of: str | None = None) -> None:
    """Nightly (beat) and on demand: features, then clusters, then CLV, then a full refresh of the
    dynamic segments (whose rules may read the new groups, clusters and predictions), as a chain.

    The three analytics steps share one `as_of` (now, unless given) so they describe the same
    history. Clusters read the features the first step wrote; a step that raises stops the chain,
    and a model that cannot be fitted is a failed run with its reason, which does not stop it.
    """
    from django.utils import timezone

    from segments.tasks import refresh_all

    stamp = as_of or timezone.now().isoformat()
    chain(
        compute_features.si(stamp), compute_clusters.si(), compute_clv.si(stamp), refresh_all.si()
    ).apply_async()
