"""The global holdout report: revenue per customer, held out of every campaign versus everyone else.

The holdout is decided by a stable hash of the customer id with its own salt
(experiments.assignment.in_global_holdout), so membership is recomputed here exactly as the ledger
writer decided it, for every customer, whether or not a campaign ever reached them. Revenue counts
every non-cancelled order in the period (refunds are negative orders and reduce it), customers
without orders count as 0, and the two groups are compared with Welch's test on the mean.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from customers.models import Customer, Order
from experiments.assignment import GLOBAL_HOLDOUT_SALT, in_global_holdout
from experiments.stats import MetricSums, compare_means, describe_comparison

CHUNK = 20_000


def holdout_settings() -> tuple[float, str]:
    percent = float(getattr(settings, "CAMPAIGN_GLOBAL_HOLDOUT_PERCENT", 0) or 0)
    salt = getattr(settings, "CAMPAIGN_GLOBAL_HOLDOUT_SALT", GLOBAL_HOLDOUT_SALT) or GLOBAL_HOLDOUT_SALT
    return percent, salt


def holdout_report(*, days: int = 30, now: datetime | None = None, alpha: float = 0.05) -> dict:
    now = now or timezone.now()
    since = now - timedelta(days=days)
    percent, salt = holdout_settings()
    base = {"percent": percent, "days": days, "since": since.isoformat(), "until": now.isoformat()}
    if percent <= 0:
        return {
            **base,
            "groups": [],
            "comparison": None,
            "verdict": "No global holdout is configured "
            "(CAMPAIGN_GLOBAL_HOLDOUT_PERCENT is 0), so the total lift of marketing cannot be measured.",
        }
    share = percent / 100
    revenue = dict(
        Order.objects.filter(placed_at__gte=since, placed_at__lt=now)
        .exclude(status=Order.Status.CANCELLED)
        .values_list("customer_id")
        .annotate(total=Sum("total"))
        .values_list("customer_id", "total")
    )
    groups: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0])  # n, sum, squares, buyers
    last = 0
    while True:
        ids = list(Customer.objects.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:CHUNK])
        if not ids:
            break
        last = ids[-1]
        for customer_id in ids:
            key = "holdout" if in_global_holdout(customer_id, share=share, salt=salt) else "everyone_else"
            value = float(revenue.get(customer_id, 0) or 0)
            group = groups[key]
            group[0] += 1
            group[1] += value
            group[2] += value * value
            group[3] += value != 0
    rows = []
    for key, label in (("holdout", "Global holdout"), ("everyone_else", "Everyone else")):
        n, total, squares, buyers = groups[key]
        rows.append(
            {
                "group": key,
                "name": label,
                "customers": int(n),
                "buyers": int(buyers),
                "revenue": round(total, 2),
                "revenue_per_customer": total / n if n else None,
            }
        )
    holdout, rest = groups["holdout"], groups["everyone_else"]
    if holdout[0] < 2 or rest[0] < 2:
        return {
            **base,
            "groups": rows,
            "comparison": None,
            "verdict": "Not enough customers in the holdout yet to compare.",
        }
    baseline = MetricSums(n=int(holdout[0]), sum=holdout[1], sum_squares=holdout[2])
    treated = MetricSums(n=int(rest[0]), sum=rest[1], sum_squares=rest[2])
    absolute = compare_means(baseline, treated, alpha=alpha)
    relative = compare_means(baseline, treated, alpha=alpha, relative=True)
    headline = relative if relative.effect is not None and relative.ci is not None else absolute
    verdict = describe_comparison(
        headline,
        variant="Everyone else",
        baseline="the global holdout",
        metric="mean",
        method="frequentist",
        relative=headline is relative,
        metric_label="revenue per customer",
    )
    return {
        **base,
        "groups": rows,
        "comparison": {
            "absolute_effect": absolute.effect,
            "absolute_ci": list(absolute.ci) if absolute.ci else None,
            "relative_effect": relative.effect,
            "relative_ci": list(relative.ci) if relative.ci else None,
            "p_value": absolute.p_value,
            "confidence_level": absolute.confidence_level,
        },
        "verdict": verdict,
    }
