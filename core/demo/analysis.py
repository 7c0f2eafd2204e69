"""Stage 6: did the recommendations beat the bestsellers? The test analysed with experiments.stats.

The decision rests on the order rate (the primary metric, decided before looking); the share of
customers who clicked and revenue per customer are shown beside it as secondary metrics.

Intention to treat (ARCHITECTURE.md, "Attribution versus experiments"): every customer assigned
to an arm counts, opened or not, with all their orders since the launch, not only the ones the
campaign report attributes. Variant B (bestsellers) is the baseline, A (recommendations) the
challenger; the control group measures what the email does at all. The split is checked for a
sample ratio mismatch against the configured weights (control 10 %, A and B 45 % each).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Sum

from campaigns.models import Campaign, Send, TrackingEvent, TrackingKind
from campaigns.services.results import campaign_report
from core.demo.context import DemoContext, money, rounded
from customers.models import Order
from experiments.models import Experiment
from experiments.services.results import experiment_results
from experiments.stats import (
    ConversionCounts,
    MetricSums,
    analyze_experiment,
    check_sample_ratio,
    sample_ratio_warning,
)

ARMS = ("control", "B", "A")  # the baseline of each comparison first
ARM_LABELS = {"control": "Control (no email)", "A": "A: recommendations", "B": "B: bestsellers"}


def arm_outcomes(campaign: Campaign) -> dict[str, dict[str, Any]]:
    """Per arm: customers assigned, customers who ordered since the launch, revenue and its squares."""
    arm_of: dict[int, str] = {}
    for customer_id, arm, variant in Send.objects.filter(campaign=campaign).values_list(
        "customer_id", "arm", "variant__name"
    ):
        arm_of[customer_id] = variant if arm == "variant" else arm
    revenue: dict[int, float] = {
        cid: float(total)
        for cid, total in Order.objects.filter(placed_at__gte=campaign.launched_at, customer_id__in=arm_of)
        .exclude(status=Order.Status.CANCELLED)
        .values_list("customer_id")
        .annotate(total=Sum("total"))
        .order_by()
    }
    clicked = set(
        TrackingEvent.objects.filter(campaign=campaign, kind=TrackingKind.CLICK, machine=False).values_list(
            "customer_id", flat=True
        )
    )
    outcomes = {
        arm: {"n": 0, "converted": 0, "clicked": 0, "revenue": 0.0, "revenue_squares": 0.0} for arm in ARMS
    }
    for customer_id, arm in arm_of.items():
        if arm not in outcomes:
            continue
        value = revenue.get(customer_id)
        row = outcomes[arm]
        row["n"] += 1
        row["clicked"] += customer_id in clicked
        if value is not None and value > 0:
            row["converted"] += 1
            row["revenue"] += value
            row["revenue_squares"] += value * value
    return outcomes


def _comparison(result) -> dict[str, Any]:
    c = result.comparison
    return {
        "variant": result.variant,
        "baseline": result.baseline,
        "effect": rounded(c.effect),
        "ci_low": rounded(c.ci_low),
        "ci_high": rounded(c.ci_high),
        "confidence_level": rounded(c.confidence_level),
        "p_value": rounded(c.p_value),
        "chance_to_win": rounded(c.chance_to_win),
        "expected_loss": rounded(c.expected_loss),
        "verdict": result.verdict,
    }


def analyse(campaign: Campaign) -> dict[str, Any]:
    outcomes = arm_outcomes(campaign)
    ab = ["B", "A"]
    names = ["Variant B (bestsellers)", "Variant A (recommendations)"]
    conversions = [ConversionCounts(n=outcomes[a]["n"], conversions=outcomes[a]["converted"]) for a in ab]
    frequentist = analyze_experiment(
        names, conversions, metric="proportion", method="frequentist", metric_label="the order rate"
    )
    bayesian = analyze_experiment(
        names, conversions, metric="proportion", method="bayesian", metric_label="the order rate"
    )
    clicks = analyze_experiment(
        names,
        [ConversionCounts(n=outcomes[a]["n"], conversions=outcomes[a]["clicked"]) for a in ab],
        metric="proportion",
        method="frequentist",
        metric_label="the share of customers who clicked",
    )
    revenue = analyze_experiment(
        names,
        [
            MetricSums(
                n=outcomes[a]["n"], sum=outcomes[a]["revenue"], sum_squares=outcomes[a]["revenue_squares"]
            )
            for a in ab
        ],
        metric="mean",
        method="frequentist",
        metric_label="revenue per customer",
    )
    lift = None
    if outcomes["control"]["n"]:  # a tiny slice may leave the 10 % control group empty
        lift = analyze_experiment(
            ["control group", "the email (A and B)"],
            [
                ConversionCounts(n=outcomes["control"]["n"], conversions=outcomes["control"]["converted"]),
                ConversionCounts(
                    n=outcomes["A"]["n"] + outcomes["B"]["n"],
                    conversions=outcomes["A"]["converted"] + outcomes["B"]["converted"],
                ),
            ],
            metric="proportion",
            method="frequentist",
            metric_label="the order rate",
        )
    control = float(campaign.control_percent)
    weights = [control, (100 - control) / 2, (100 - control) / 2]
    srm = check_sample_ratio([outcomes[a]["n"] for a in ARMS], weights)
    return {
        "method": "intention to treat: every assigned customer, all orders since the launch",
        "arms": {
            a: {
                "customers": outcomes[a]["n"],
                "clicked": outcomes[a]["clicked"],
                "ordered": outcomes[a]["converted"],
                "order_rate": rounded(outcomes[a]["converted"] / outcomes[a]["n"])
                if outcomes[a]["n"]
                else None,
                "revenue": rounded(outcomes[a]["revenue"], 2),
                "revenue_per_customer": rounded(outcomes[a]["revenue"] / outcomes[a]["n"], 4)
                if outcomes[a]["n"]
                else None,
            }
            for a in ARMS
        },
        "order_rate_a_vs_b": _comparison(frequentist.comparisons[0]),
        "order_rate_a_vs_b_bayesian": _comparison(bayesian.comparisons[0]),
        "click_rate_a_vs_b": _comparison(clicks.comparisons[0]),
        "revenue_per_customer_a_vs_b": _comparison(revenue.comparisons[0]),
        "email_vs_control": _comparison(lift.comparisons[0]) if lift is not None else None,
        "sample_ratio": {
            "observed": list(srm.observed),
            "expected": [rounded(e, 2) for e in srm.expected],
            "p_value": rounded(srm.p_value),
            "mismatch": srm.mismatch,
            "warning": sample_ratio_warning(srm, [ARM_LABELS[a] for a in ARMS]),
        },
    }


def verdict(result: dict[str, Any]) -> str:
    """The decision in a sentence: ship A only if the interval is clear of zero."""
    freq = result["order_rate_a_vs_b"]
    chance = result["order_rate_a_vs_b_bayesian"]["chance_to_win"]
    if result["sample_ratio"]["mismatch"]:
        return "Do not decide: the split of customers does not match the weights (sample ratio mismatch)."
    if freq["ci_low"] is not None and freq["ci_low"] > 0:
        return (
            f"Ship A (recommendations): it raised the order rate by {freq['effect'] * 100:.1f} points "
            f"(95 % CI {freq['ci_low'] * 100:.1f} to {freq['ci_high'] * 100:.1f}); "
            f"chance to beat B {chance * 100:.0f} %."
        )
    if freq["ci_high"] is not None and freq["ci_high"] < 0:
        return "Keep B (bestsellers): recommendations lowered the order rate."
    return (
        f"No clear winner yet: A's effect on the order rate is {freq['effect'] * 100:+.1f} points "
        f"(95 % CI {freq['ci_low'] * 100:.1f} to {freq['ci_high'] * 100:.1f}), chance to beat B "
        f"{chance * 100:.0f} %; keep the test running or test on a larger audience."
    )


def product_results(campaign: Campaign) -> dict[str, Any]:
    """What the experiment's results page shows (experiments.services.results), for the report.

    The product counts the recipients of each variant and their orders within the conversion
    window after their send; the analysis above counts everyone assigned, control group included.
    """
    experiment = Experiment.objects.get(campaign=campaign)
    results = experiment_results(experiment=experiment, with_series=False)
    return {
        "experiment": experiment.pk,
        "metric": results["metric_label"],
        "baseline": results["baseline"],
        "arms": [
            {k: (rounded(v) if isinstance(v, float) else v) for k, v in arm.items()}
            for arm in results["arms"]
        ],
        "comparisons": [
            {
                "variant": c["variant"],
                "effect": rounded(c["effect"]),
                "ci": [rounded(x) for x in c["ci"]] if c["ci"] else None,
                "p_value": rounded(c["p_value"]),
                "verdict": c["verdict"],
            }
            for c in results["comparisons"]
        ],
        "verdict": results["verdict"],
        "admin_path": f"/admin/experiments/experiment/{experiment.pk}/results/",
    }


def run(ctx: DemoContext) -> None:
    campaign = Campaign.objects.get(pk=ctx.extras["campaign_id"])
    result = analyse(campaign)
    result["decision"] = verdict(result)
    result["product_results"] = product_results(campaign)
    report = campaign_report(campaign=campaign)
    ctx.extras["campaign_report"] = report
    ctx.report["campaign"]["report"] = _funnel(report)
    ctx.report["experiment"] = result
    for arm in ARMS:
        row = result["arms"][arm]
        ctx.say(
            f"  {ARM_LABELS[arm]:<22} {row['customers']:>4} customers, {row['ordered']:>3} ordered "
            f"({(row['order_rate'] or 0) * 100:.1f} %), revenue per customer {row['revenue_per_customer']}"
        )
    ctx.say(f"  {result['order_rate_a_vs_b']['verdict']}")
    ctx.say(f"  {result['order_rate_a_vs_b_bayesian']['verdict']}")
    ctx.say(f"  {result['click_rate_a_vs_b']['verdict']}")
    if result["sample_ratio"]["warning"]:
        ctx.say(f"  {result['sample_ratio']['warning']}")
    else:
        ctx.say(f"  Sample ratio check passed (chi-square p = {result['sample_ratio']['p_value']:.2f}).")
    ctx.say(f"  Verdict: {result['decision']}")
    ctx.say(
        f"  The experiment's results page ({result['product_results']['admin_path']}), recipients only: "
        f"{result['product_results']['verdict']}"
    )


FUNNEL_KEYS = (
    "audience",
    "sent",
    "held_out",
    "suppressed",
    "failed",
    "delivered",
    "opens_human",
    "opens_machine",
    "clicks",
    "unsubscribes",
    "conversions",
    "revenue",
    "open_rate",
    "click_rate",
    "conversion_rate",
    "revenue_per_recipient",
)


def _funnel(report: dict[str, Any]) -> dict[str, Any]:
    """The campaign report's totals and per-variant rows (counts only, not its clock-based buckets)."""

    def pick(row: dict[str, Any]) -> dict[str, Any]:
        picked = {k: row.get(k) for k in FUNNEL_KEYS}
        picked["revenue"] = money(picked["revenue"])
        return picked

    return {
        "totals": pick(report["totals"]),
        "variants": {row["variant"]: pick(row) for row in report["variants"]},
    }
