"""Reads of the customer analytics: the summaries behind the API and the admin page.

Grid and group counts are aggregates over `CustomerFeatures` (one GROUP BY each) cached under the
id of the run that wrote them, so a new run is visible at once and an old cache entry simply goes
unused. The model parameters and cluster profiles come from the run's stored summary.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Sum

from segments.analytics.rfm import SCORES
from segments.features.models import AnalyticsRun
from segments.features.recency import recency_days, scored_as_of
from segments.features.services import group_descriptions, rfm_mapping
from segments.models import CustomerFeatures

_CACHE_SECONDS = 24 * 3600


def latest_run(*, kind: str, succeeded: bool = True) -> AnalyticsRun | None:
    runs = AnalyticsRun.objects.filter(kind=kind)
    if succeeded:
        runs = runs.filter(state=AnalyticsRun.State.SUCCEEDED)
    return runs.order_by("-started_at", "-id").first()


def recent_runs(*, limit: int = 10) -> list[AnalyticsRun]:
    return list(AnalyticsRun.objects.order_by("-started_at", "-id")[:limit])


def _run_info(run: AnalyticsRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.pk,
        "state": run.state,
        "as_of": run.as_of,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "seconds": run.seconds,
        "customers": run.customers,
        "error": run.error,
    }


def _failure_since(kind: str, run: AnalyticsRun | None) -> dict[str, Any] | None:
    """The latest run of this kind if it failed after the last success: the marketer must see it."""
    last = latest_run(kind=kind, succeeded=False)
    if last is None or last.state != AnalyticsRun.State.FAILED:
        return None
    if run is not None and last.started_at < run.started_at:
        return None
    return _run_info(last)


def _cached(key: str, compute):
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, _CACHE_SECONDS)
    return value


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def rfm_summary() -> dict[str, Any]:
    """Customers and revenue per R x F cell and per named group, with the mapping that named them."""
    run = latest_run(kind=AnalyticsRun.Kind.FEATURES)
    mapping = rfm_mapping()

    def compute() -> dict[str, Any]:
        scored = CustomerFeatures.objects.filter(rfm_r__isnull=False)
        cells = {
            (row["rfm_r"], row["rfm_f"]): row
            for row in scored.values("rfm_r", "rfm_f").annotate(
                customers=Count("pk"), revenue=Sum("monetary")
            )
        }
        grid = [
            {
                "recency": r,
                "frequency": f,
                "customers": cells.get((r, f), {}).get("customers", 0),
                "revenue": float(cells.get((r, f), {}).get("revenue") or 0),
            }
            for r in SCORES
            for f in SCORES
        ]
        by_group = {
            row["rfm_group"]: row
            for row in scored.values("rfm_group").annotate(customers=Count("pk"), revenue=Sum("monetary"))
        }
        descriptions = group_descriptions(mapping)
        groups = [
            {
                "group": name,
                "customers": by_group.get(name, {}).get("customers", 0),
                "revenue": float(by_group.get(name, {}).get("revenue") or 0),
                "description": descriptions.get(name, ""),
            }
            for name in mapping.groups
        ]
        scored_total = sum(g["customers"] for g in groups)
        for group in groups:
            group["share"] = group["customers"] / scored_total if scored_total else 0.0
        return {
            "customers_scored": scored_total,
            "customers_without_purchase": CustomerFeatures.objects.filter(rfm_r__isnull=True).count(),
            "grid": grid,
            "groups": groups,
        }

    data = _cached(f"segments:analytics:rfm:{run.pk if run else 0}:{_digest(mapping.as_table())}", compute)
    return {
        "run": _run_info(run),
        "failure": _failure_since(AnalyticsRun.Kind.FEATURES, run),
        "mapping": {"value_score": mapping.value_score, "rules": mapping.as_table()},
        **data,
    }


def cluster_summary() -> dict[str, Any]:
    run = latest_run(kind=AnalyticsRun.Kind.CLUSTERS)
    summary = run.summary if run else {}
    return {
        "run": _run_info(run),
        "failure": _failure_since(AnalyticsRun.Kind.CLUSTERS, run),
        "k": summary.get("k"),
        "features": summary.get("features", []),
        "log_features": summary.get("log_features", []),
        "silhouette": summary.get("silhouette", {}),
        "clusters": summary.get("profiles", []),
    }


CLV_EXPLANATION = {
    "p_alive": (
        "P(alive) is the probability that a customer has not left for good. The BG/NBD model reads "
        "it from each customer's own rhythm: someone who bought every week and has been silent for "
        "months has probably left; someone who buys twice a year and was seen three months ago has "
        "probably not. A customer who has bought only once has P(alive) = 1 in this model (it lets "
        "customers leave only after a repeat purchase); rank them by expected purchases instead."
    ),
    "churn_probability": "Churn probability = 1 - P(alive).",
    "expected_purchases_90d": (
        "Expected purchase days in the next 90 days: how often the customer buys while active, "
        "times how likely they are to still be active."
    ),
    "predicted_clv": (
        "Predicted CLV: the expected purchases month by month (BG/NBD) times the expected spend per "
        "purchase (Gamma-Gamma, which trusts a customer's own average more the more purchases it "
        "rests on), discounted to today's money, over the horizon in months."
    ),
    "parameters": (
        "BG/NBD: purchase rates across customers follow a gamma distribution with shape r and "
        "scale alpha (mean rate r/alpha purchases per time unit); the chance of leaving after a "
        "purchase follows a beta distribution (a, b), mean a/(a+b). Gamma-Gamma: spend per "
        "purchase has shape p, and its scale varies across customers with shape q and scale v; the "
        "average customer spends p*v/(q-1) per purchase."
    ),
}


def clv_summary() -> dict[str, Any]:
    run = latest_run(kind=AnalyticsRun.Kind.CLV)
    summary = dict(run.summary) if run else {}
    bgnbd = summary.get("bgnbd") or {}
    derived = {}
    if bgnbd:
        derived = {
            "mean_purchase_rate": bgnbd["r"] / bgnbd["alpha"],
            "mean_dropout_probability": bgnbd["a"] / (bgnbd["a"] + bgnbd["b"]),
        }
    return {
        "run": _run_info(run),
        "failure": _failure_since(AnalyticsRun.Kind.CLV, run),
        **summary,
        "derived": derived,
        "explanation": CLV_EXPLANATION,
    }


def customer_features(*, customer) -> dict[str, Any] | None:
    """The stored features of one customer, with the description of their group and cluster."""
    features = CustomerFeatures.objects.filter(customer=customer).first()
    if features is None:
        return None
    descriptions = group_descriptions(rfm_mapping())
    cluster_run = latest_run(kind=AnalyticsRun.Kind.CLUSTERS)
    cluster_description = ""
    if cluster_run is not None and features.cluster is not None:
        for profile in cluster_run.summary.get("profiles", []):
            if profile.get("cluster") == features.cluster:
                cluster_description = profile.get("description", "")
    return {
        "recency_days": recency_days(features.last_order_at, scored_as_of()),
        "frequency": features.frequency,
        "monetary": features.monetary,
        "average_order_value": features.average_order_value,
        "first_order_at": features.first_order_at,
        "last_order_at": features.last_order_at,
        "rfm": {
            "recency": features.rfm_r,
            "frequency": features.rfm_f,
            "monetary": features.rfm_m,
            "group": features.rfm_group,
            "description": descriptions.get(features.rfm_group, ""),
        },
        "cluster": features.cluster,
        "cluster_description": cluster_description,
        "p_alive": features.p_alive,
        "churn_probability": features.churn_probability,
        "expected_purchases_90d": features.expected_purchases_90d,
        "predicted_clv": features.predicted_clv,
        "computed_at": features.computed_at,
    }
