"""Stage 3: who the customers are. RFM groups, behavioural clusters, lifetime value, segments.

RFM groups and clusters come from the customer analytics services (`segments.features.services`:
RFM quintiles in SQL, k-means on the stored features), as of the day after the sample's last
order, so the numbers do not depend on when the demo runs. The segments are written in the rule
language (`segments.rules`) and refreshed by the segments services. Lifetime value needs a year
of history and the sample covers two weeks, so BG/NBD and Gamma-Gamma are fitted on a synthetic year from `core.synthetic` instead, and
the report says so; the retail customers' CLV stays empty rather than invented.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np
from django.db.models import Max

from core.demo.context import DemoContext, rounded
from core.synthetic import SyntheticConfig, collect
from customers.models import Order
from segments.analytics import (
    ModelFitError,
    build_customer_summary,
    customer_lifetime_value,
    fit_bgnbd,
    fit_gamma_gamma,
)
from segments.features.services import compute_clusters, compute_features
from segments.models import CustomerFeatures, Segment
from segments.services import clean_rules, refresh_segment

FM_STEPS = tuple(x / 2 for x in range(2, 11))  # 1, 1.5, ..., 5


def observation_end() -> datetime:
    """Midnight after the sample's last order: what "today" is for recency."""
    last = Order.objects.aggregate(last=Max("placed_at"))["last"]
    return datetime.combine(last.astimezone(UTC).date() + timedelta(days=1), time.min, tzinfo=UTC)


def features(ctx: DemoContext, as_of: datetime) -> dict[str, Any]:
    """RFM and order features, then clusters, through the analytics services."""
    run = compute_features(as_of=as_of)
    if run.state != run.State.SUCCEEDED:
        raise RuntimeError(f"the features run failed: {run.error}")
    clusters = compute_clusters(k_range=(2, 6), seed=ctx.seed)
    if clusters.state != clusters.State.SUCCEEDED:
        raise RuntimeError(f"the clusters run failed: {clusters.error}")
    rows = list(
        CustomerFeatures.objects.filter(frequency__gt=0, rfm_r__isnull=False)
        .order_by("customer_id")
        .values_list("rfm_r", "rfm_f", "rfm_m", "rfm_group")
    )
    grid = np.zeros((5, len(FM_STEPS)), dtype=int)
    for r, f, m, _ in rows:
        grid[5 - r, FM_STEPS.index((f + m) / 2)] += 1
    summary = clusters.summary
    return {
        "customers": len(rows),
        "groups": Counter(row[3] for row in rows),
        "grid": grid,
        "k": int(summary["k"]),
        "silhouette": {k: rounded(v, 4) for k, v in sorted(summary["silhouette"].items())},
        "profiles": [
            {
                "cluster": int(p["cluster"]),
                "customers": int(p["customers"]),
                "description": p["description"],
                "mean": {k: rounded(v, 2) for k, v in p["mean"].items()},
            }
            for p in summary["profiles"]
        ],
    }


def lifetime_value(ctx: DemoContext, as_of: datetime) -> dict[str, Any]:
    """BG/NBD + Gamma-Gamma: tried on the retail sample, shown on a synthetic year."""
    retail_orders = list(
        Order.objects.filter(status__in=["placed", "paid", "fulfilled"], total__gt=0).values_list(
            "customer_id", "placed_at", "total"
        )
    )
    retail = build_customer_summary(
        [o[0] for o in retail_orders],
        [o[1].date() for o in retail_orders],
        [float(o[2]) for o in retail_orders],
        observation_end=as_of.date() - timedelta(days=1),
        time_unit="days",
    )
    span = (max(o[1] for o in retail_orders) - min(o[1] for o in retail_orders)).days + 1
    retail_note = (
        f"The retail sample covers {span} days: too short to see customers come back and go quiet, "
        "so its customers get no CLV; the models are shown on a synthetic year instead."
    )
    size = 1500 if ctx.fast else 5000
    config = SyntheticConfig(
        customers=size, products=300, orders=size * 4, seed=ctx.seed, days=365, browse_events=0
    )
    orders = collect(config)["orders"]
    valid = (orders.columns["total"] > 0) & (orders.columns["status"] != b"cancelled")
    scale = 10 ** orders.scales.get("total", 2)
    summary = build_customer_summary(
        orders.columns["customer_id"][valid],
        orders.columns["placed_at"][valid].astype("datetime64[D]"),
        orders.columns["total"][valid] / scale,
        observation_end=np.datetime64(config.end.replace(tzinfo=None), "D") - 1,
        time_unit="weeks",
    )
    bgnbd = fit_bgnbd(summary.frequency, summary.recency, summary.age)
    spend = fit_gamma_gamma(summary.frequency, summary.mean_repeat_spend)
    clv = customer_lifetime_value(
        bgnbd,
        spend,
        frequency=summary.frequency,
        recency=summary.recency,
        age=summary.age,
        mean_repeat_spend=summary.mean_repeat_spend,
        time_unit="weeks",
        months=12,
    )
    alive = bgnbd.probability_alive(summary.frequency, summary.recency, summary.age)
    retail_fit: dict[str, Any]
    try:
        model = fit_bgnbd(retail.frequency, retail.recency, retail.age)
        retail_fit = {"fitted": True, "r": rounded(model.r, 4), "alpha": rounded(model.alpha, 4)}
    except ModelFitError as exc:
        retail_fit = {"fitted": False, "reason": str(exc)}
    deciles = np.quantile(clv, [0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
    ctx.extras["clv_values"] = clv
    return {
        "data": "synthetic year (core.synthetic)",
        "note": retail_note,
        "retail_days": span,
        "retail_repeat_customers": int((retail.frequency > 0).sum()),
        "retail_bgnbd": retail_fit,
        "synthetic": {
            "seed": ctx.seed,
            "customers": int(len(summary)),
            "repeat_customers": int((summary.frequency > 0).sum()),
            "orders": int(valid.sum()),
        },
        "bgnbd": {k: rounded(getattr(bgnbd, k), 4) for k in ("r", "alpha", "a", "b")},
        "gamma_gamma": {k: rounded(getattr(spend, k), 4) for k in ("p", "q", "v")},
        "clv_12_months": {
            "mean": rounded(clv.mean(), 2),
            "total": rounded(clv.sum(), 2),
            "quantiles": {
                q: rounded(v, 2)
                for q, v in zip(("p10", "p25", "p50", "p75", "p90", "p99"), deciles, strict=True)
            },
        },
        "mean_p_alive": rounded(alive.mean(), 4),
    }


SEGMENTS = (
    (
        "Email subscribers",
        "Everyone who can receive email: the campaign's audience.",
        {"all": [{"field": "consent.email", "op": "eq", "value": "granted"}]},
    ),
    (
        "Champions",
        "RFM group Champions: bought recently, often and for the most.",
        {"all": [{"field": "rfm.group", "op": "eq", "value": "Champions"}]},
    ),
    (
        "Slipping valuables",
        "At risk or Can't lose them: good customers who have gone quiet.",
        {"any": [{"field": "rfm.group", "op": "in", "value": ["At risk", "Can't lose them"]}]},
    ),
    (
        "Silver and Gold members",
        "Loyalty members in the two upper tiers.",
        {"all": [{"field": "loyalty.tier", "op": "in", "value": ["Silver", "Gold"]}]},
    ),
    (
        "Big baskets",
        "Average order value of 300 or more.",
        {"all": [{"field": "order.aov", "op": "gte", "value": 300}]},
    ),
)


def materialise(segment: Segment, *, now: datetime) -> int:
    """Write a new segment's members with the segments service (set-wise, on either database)."""
    return refresh_segment(segment_id=segment.pk, now=now).member_count


def create_segments(as_of: datetime) -> dict[str, int]:
    """The demo's rule segments, validated by the rule language and refreshed."""
    counts: dict[str, int] = {}
    for name, description, rules in SEGMENTS:
        clean_rules(rules=rules)
        segment = Segment.objects.create(
            name=name, description=description, kind=Segment.Kind.DYNAMIC, rules=rules
        )
        counts[name] = materialise(segment, now=as_of)
    return counts


def run(ctx: DemoContext) -> None:
    as_of = observation_end()
    found = features(ctx, as_of)
    ctx.extras["rfm_grid"] = found["grid"]
    clv = lifetime_value(ctx, as_of)
    segments = create_segments(as_of)
    groups = found["groups"]
    ctx.report["analytics"] = {
        "customers_with_orders": found["customers"],
        "observation_end": as_of.date().isoformat(),
        "rfm_groups": dict(sorted(groups.items())),
        "rfm_grid": {"rows": "R 5..1", "columns": "FM 1..5 in half steps", "counts": found["grid"].tolist()},
        "clusters": {"k": found["k"], "silhouette": found["silhouette"], "profiles": found["profiles"]},
        "clv": clv,
        "segments": segments,
    }
    ctx.say(
        f"  RFM: {', '.join(f'{g} {n}' for g, n in groups.most_common(5))}, ...; {found['k']} clusters "
        f"(silhouette {found['silhouette'].get(str(found['k']), float('nan')):.2f})"
    )
    ctx.say(
        f"  CLV on a synthetic year ({clv['synthetic']['customers']} customers): BG/NBD r={clv['bgnbd']['r']}, "
        f"alpha={clv['bgnbd']['alpha']}, a={clv['bgnbd']['a']}, b={clv['bgnbd']['b']}; "
        f"median 12-month CLV {clv['clv_12_months']['quantiles']['p50']}"
    )
    ctx.say("  segments: " + ", ".join(f"{k} {v}" for k, v in segments.items()))
