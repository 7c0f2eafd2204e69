"""Stage 3: who the customers are. RFM groups, behavioural clusters, lifetime value, segments.

RFM and clusters are computed on the retail customers with the pure `segments.analytics` code and
written to `CustomerFeatures`, as of the day after the sample's last order (so the numbers do not
depend on when the demo runs). Lifetime value needs a year of history and the sample covers two
weeks, so BG/NBD and Gamma-Gamma are fitted on a synthetic year from `core.synthetic` instead, and
the report says so; the retail customers' CLV stays empty rather than invented.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from core.demo.context import DemoContext, rounded
from core.synthetic import SyntheticConfig, collect
from customers.models import Customer, Order
from segments.analytics import (
    DEFAULT_RFM_MAPPING,
    ModelFitError,
    build_customer_summary,
    cluster_customers,
    customer_lifetime_value,
    fit_bgnbd,
    fit_gamma_gamma,
    quintile_scores,
)
from segments.models import CustomerFeatures, Segment, SegmentMembership

FEATURE_NAMES = ("recency_days", "frequency", "monetary", "average_order_value")
LOG_FEATURES = ("frequency", "monetary", "average_order_value")
FM_STEPS = tuple(x / 2 for x in range(2, 11))  # 1, 1.5, ..., 5


def customer_table() -> dict[str, Any]:
    """Per customer with at least one placed order: recency, order count, net revenue, basket."""
    placed = Q(orders__status__in=["placed", "paid", "fulfilled"])
    rows = list(
        Customer.objects.annotate(
            n_orders=Count("orders", filter=placed),
            revenue=Sum("orders__total"),
            first=Min("orders__placed_at", filter=placed),
            last=Max("orders__placed_at", filter=placed),
        )
        .filter(n_orders__gt=0)
        .order_by("pk")
        .values_list("pk", "n_orders", "revenue", "first", "last")
    )
    end = max(r[4] for r in rows).date() + timedelta(days=1)
    ids = np.asarray([r[0] for r in rows])
    frequency = np.asarray([r[1] for r in rows], dtype=float)
    monetary = np.asarray([max(float(r[2] or 0), 0.0) for r in rows])
    recency = np.asarray([(end - r[4].date()).days for r in rows], dtype=float)
    return {
        "ids": ids,
        "frequency": frequency,
        "monetary": monetary,
        "recency_days": recency,
        "average_order_value": monetary / frequency,
        "first": [r[3] for r in rows],
        "last": [r[4] for r in rows],
        "observation_end": end,
    }


def rfm(table: dict[str, Any]) -> dict[str, Any]:
    ids = table["ids"]
    r = quintile_scores(table["recency_days"], tiebreak=ids, descending=True)
    f = quintile_scores(table["frequency"], tiebreak=ids)
    m = quintile_scores(table["monetary"], tiebreak=ids)
    groups = DEFAULT_RFM_MAPPING.assign(r, f, m)
    grid = np.zeros((5, len(FM_STEPS)), dtype=int)
    for ri, fm in zip(r, (f + m) / 2, strict=True):
        grid[5 - ri, FM_STEPS.index(fm)] += 1
    return {"r": r, "f": f, "m": m, "groups": groups, "grid": grid}


def clusters(ctx: DemoContext, table: dict[str, Any]):
    features = np.column_stack([table[name] for name in FEATURE_NAMES])
    return cluster_customers(
        features, FEATURE_NAMES, log_features=LOG_FEATURES, seed=ctx.seed, k_range=(2, 6), n_init=4
    )


def write_features(table: dict[str, Any], scores: dict[str, Any], labels: np.ndarray) -> int:
    """Bulk-write the features. Isolated so that the segments app's feature service can replace it."""
    now = timezone.now()
    rows = [
        CustomerFeatures(
            customer_id=int(cid),
            recency_days=int(table["recency_days"][i]),
            frequency=int(table["frequency"][i]),
            monetary=Decimal(str(round(table["monetary"][i], 2))),
            average_order_value=Decimal(str(round(table["average_order_value"][i], 2))),
            first_order_at=table["first"][i],
            last_order_at=table["last"][i],
            rfm_r=int(scores["r"][i]),
            rfm_f=int(scores["f"][i]),
            rfm_m=int(scores["m"][i]),
            rfm_group=str(scores["groups"][i]),
            cluster=int(labels[i]),
            computed_at=now,
        )
        for i, cid in enumerate(table["ids"].tolist())
    ]
    with transaction.atomic():
        CustomerFeatures.objects.all().delete()
        CustomerFeatures.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def lifetime_value(ctx: DemoContext, table: dict[str, Any]) -> dict[str, Any]:
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
        observation_end=table["observation_end"] - timedelta(days=1),
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
        {"all": [{"field": "rfm_group", "op": "eq", "value": "Champions"}]},
    ),
    (
        "Slipping valuables",
        "At risk or Can't lose them: good customers who have gone quiet.",
        {"any": [{"field": "rfm_group", "op": "in", "value": ["At risk", "Can't lose them"]}]},
    ),
    (
        "Silver and Gold members",
        "Loyalty members in the two upper tiers.",
        {"all": [{"field": "loyalty.tier", "op": "in", "value": ["Silver", "Gold"]}]},
    ),
    (
        "Big baskets",
        "Average order value of 300 or more.",
        {"all": [{"field": "orders.average_value", "op": "gte", "value": 300}]},
    ),
)


def _members_query(name: str):
    """The rule of each demo segment as a query (what the rule language compiles them to)."""
    if name == "Email subscribers":
        return Customer.objects.filter(consents__channel="email", consents__status="granted")
    if name == "Champions":
        return Customer.objects.filter(features__rfm_group="Champions")
    if name == "Slipping valuables":
        return Customer.objects.filter(features__rfm_group__in=["At risk", "Can't lose them"])
    if name == "Silver and Gold members":
        return Customer.objects.filter(memberships__tier__name__in=["Silver", "Gold"])
    if name == "Big baskets":
        return Customer.objects.filter(features__average_order_value__gte=300)
    raise KeyError(name)


def refresh_segments() -> dict[str, int]:
    """Create the demo's rule segments and materialise their members.

    Isolated so that the segments app's rule compiler and refresh service can replace it: the rules
    above are stored on each segment; the queries here are what those rules mean.
    """
    now = timezone.now()
    counts: dict[str, int] = {}
    with transaction.atomic():
        for name, description, rules in SEGMENTS:
            segment = Segment.objects.create(name=name, description=description, rules=rules)
            ids = sorted(set(_members_query(name).values_list("pk", flat=True)))
            SegmentMembership.objects.bulk_create(
                [SegmentMembership(segment=segment, customer_id=cid, entered_at=now) for cid in ids],
                batch_size=2000,
            )
            Segment.objects.filter(pk=segment.pk).update(member_count=len(ids), refreshed_at=now)
            counts[name] = len(ids)
    return counts


def run(ctx: DemoContext) -> None:
    table = customer_table()
    scores = rfm(table)
    found = clusters(ctx, table)
    written = write_features(table, scores, found.labels)
    groups = Counter(scores["groups"].tolist())
    ctx.extras["rfm_grid"] = scores["grid"]
    ctx.extras["cluster_profiles"] = found.profiles
    clv = lifetime_value(ctx, table)
    segments = refresh_segments()
    ctx.report["analytics"] = {
        "customers_with_orders": written,
        "observation_end": table["observation_end"].isoformat(),
        "rfm_groups": dict(sorted(groups.items())),
        "rfm_grid": {"rows": "R 5..1", "columns": "FM 1..5 in half steps", "counts": scores["grid"].tolist()},
        "clusters": {
            "k": int(found.k),
            "silhouette": {str(k): rounded(v, 4) for k, v in sorted(found.silhouette.items())},
            "profiles": [
                {
                    "cluster": int(p.cluster),
                    "customers": int(p.customers),
                    "description": p.description,
                    "mean": {k: rounded(v, 2) for k, v in p.mean.items()},
                }
                for p in found.profiles
            ],
        },
        "clv": clv,
        "segments": segments,
    }
    ctx.say(
        f"  RFM: {', '.join(f'{g} {n}' for g, n in groups.most_common(5))}, ...; {found.k} clusters "
        f"(silhouette {found.silhouette.get(found.k, float('nan')):.2f})"
    )
    ctx.say(
        f"  CLV on a synthetic year ({clv['synthetic']['customers']} customers): BG/NBD r={clv['bgnbd']['r']}, "
        f"alpha={clv['bgnbd']['alpha']}, a={clv['bgnbd']['a']}, b={clv['bgnbd']['b']}; "
        f"median 12-month CLV {clv['clv_12_months']['quantiles']['p50']}"
    )
    ctx.say("  segments: " + ", ".join(f"{k} {v}" for k, v in segments.items()))
