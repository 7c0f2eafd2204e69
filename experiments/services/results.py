"""An experiment's results: per-variant totals, effects with intervals, SRM, guardrails, verdict, series.

Every figure comes from `experiments.stats.analyze_experiment`, the same call the winner flow and
the command line use. The default variant is the baseline of every comparison (it is what would be
sent if nothing won). Effects are reported both absolute and relative; the headline uses the
experiment's choice.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from campaigns.models import CLAIMABLE_STATES, Arm, Campaign, Send, SendState, TrackingEvent, Variant
from customers.models import Order
from experiments import selectors
from experiments.models import Experiment, Metric, Mode
from experiments.selectors import CONTROL_KEY, ArmTotals, Timeline
from experiments.services.design import ordered_variants
from experiments.stats import ConversionCounts, ExperimentAnalysis, MetricSums, analyze_experiment
from experiments.stats.verdict import display_name

MAX_SERIES_POINTS = 45

#: metric -> (stats metric, the count of a proportion, the label in sentences)
METRICS = {
    Metric.OPEN_RATE: ("proportion", "opens_human", "open rate"),
    Metric.CLICK_RATE: ("proportion", "clicks", "click rate"),
    Metric.CONVERSION_RATE: ("proportion", "conversions", "conversion rate"),
    Metric.REVENUE_PER_RECIPIENT: ("mean", None, "revenue per recipient"),
}


def metric_label(metric: str) -> str:
    return METRICS[metric][2]


def stats_input(arm: ArmTotals, metric: str) -> ConversionCounts | MetricSums:
    kind, count_field, _ = METRICS[metric]
    if kind == "proportion":
        return ConversionCounts(n=arm.n, conversions=getattr(arm, count_field))
    return MetricSums(n=arm.n, sum=arm.revenue, sum_squares=arm.revenue_squares)


def analyze(
    arms: Sequence[ArmTotals],
    *,
    metric: str,
    method: str,
    alpha: float,
    correction: str,
    relative: bool,
    weights: Sequence[float] | None = None,
    planned_sample_size: int = 5000,
) -> ExperimentAnalysis | None:
    """The analysis of these arms (the first is the baseline), or None while an arm is too small."""
    minimum = 2 if METRICS[metric][0] == "mean" else 1
    if len(arms) < 2 or any(arm.n < minimum for arm in arms):
        return None
    if method == "bayesian":
        correction = "none"
    return analyze_experiment(
        [arm.name for arm in arms],
        [stats_input(arm, metric) for arm in arms],
        metric=METRICS[metric][0],
        method=method,
        relative=relative,
        alpha=alpha,
        correction=correction,
        weights=weights,
        planned_sample_size=max(planned_sample_size, 2),
        metric_label=metric_label(metric),
    )


def arms_for(experiment: Experiment, variants: Sequence[Variant]) -> list[ArmTotals]:
    return [
        ArmTotals(key=str(v.pk), name=v.name, variant_id=v.pk, weight=float(v.weight))
        for v in ordered_variants(experiment, variants)
    ]


def decisive(comparison) -> int:
    """+1 if the comparison shows the variant better, -1 worse, 0 no clear difference (verdict rules)."""
    c = comparison
    if c.effect is None or c.ci_low is None or c.ci_high is None:
        return 0
    if c.chance_to_win is not None and c.p_value is None:
        threshold = 1 - (1 - (c.confidence_level or 0.95)) / 2
        return 1 if c.chance_to_win >= threshold else (-1 if c.chance_to_win <= 1 - threshold else 0)
    return 1 if c.ci_low > 0 else (-1 if c.ci_high < 0 else 0)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def guardrails(experiment: Experiment, arms: Sequence[ArmTotals]) -> list[dict]:
    checks = []
    for field, count, label in (
        ("max_unsubscribe_rate", "unsubscribes", "unsubscribe rate"),
        ("max_complaint_rate", "complaints", "complaint rate"),
    ):
        limit = getattr(experiment, field)
        if limit is None:
            continue
        for arm in arms:
            rate = getattr(arm, count) / arm.n if arm.n else None
            checks.append(
                {
                    "arm": arm.name,
                    "variant_id": arm.variant_id,
                    "metric": label,
                    "rate": rate,
                    "limit": float(limit),
                    "breached": rate is not None and rate > float(limit),
                }
            )
    return checks


def _comparisons(
    absolute: ExperimentAnalysis, relative: ExperimentAnalysis, headline_relative: bool
) -> list[dict]:
    out = []
    for abs_c, rel_c in zip(absolute.comparisons, relative.comparisons, strict=True):
        head = rel_c if headline_relative else abs_c
        c = head.comparison
        out.append(
            {
                "variant": head.variant,
                "baseline": head.baseline,
                "effect": _finite(c.effect),
                "ci": [c.ci_low, c.ci_high] if c.ci is not None else None,
                "absolute_effect": _finite(abs_c.comparison.effect),
                "absolute_ci": list(abs_c.comparison.ci) if abs_c.comparison.ci else None,
                "relative_effect": _finite(rel_c.comparison.effect),
                "relative_ci": list(rel_c.comparison.ci) if rel_c.comparison.ci else None,
                "confidence_level": c.confidence_level,
                "p_value": c.p_value,
                "chance_to_win": c.chance_to_win,
                "expected_loss": c.expected_loss,
                # Whether there is a difference is one test, on the absolute difference (the one the
                # decision rule uses); the relative interval is its delta-method presentation and can
                # disagree at the margin, so it never decides.
                "direction": decisive(abs_c.comparison),
                "verdict": head.verdict,
                "note": c.note,
            }
        )
    return out


def overall_verdict(
    analysis: ExperimentAnalysis | None,
    *,
    final: bool,
    label: str,
    absolute: ExperimentAnalysis | None = None,
    srm_checked: bool = True,
) -> str:
    """The headline sentence. A comparison is clear when its absolute test is (as for the decision);
    it is then told in the headline's terms, or in absolute terms when the relative interval, an
    approximation, still touches zero. `srm_checked=False` while the split cannot be judged yet
    (variants still waiting for their send times)."""
    if analysis is None:
        return f"Not enough data yet: every variant needs recipients before {label} can be compared."
    tests = absolute.comparisons if absolute is not None else analysis.comparisons
    clear = []
    for head, test in zip(analysis.comparisons, tests, strict=True):
        direction = decisive(test.comparison)
        if direction != 0:
            clear.append(head.verdict if decisive(head.comparison) == direction else test.verdict)
    sentences = [c.verdict for c in analysis.comparisons]
    prefix = f"{analysis.srm_warning} " if analysis.srm_warning and srm_checked else ""
    if clear:
        return prefix + " ".join(clear)
    lead = "No clear difference." if final else "No clear difference yet."
    return prefix + " ".join([lead, *sentences])


def series(
    experiment: Experiment,
    items: Sequence[Timeline],
    arms: Sequence[ArmTotals],
    *,
    window: timedelta,
    now: datetime,
) -> list[dict]:
    """The cumulative effect of each variant at the end of every day since the first send."""
    if not items:
        return []
    first = min(t.start for t in items)
    last = min(now, max(t.start for t in items) + window)
    day = first.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    moments = []
    while day < last:
        moments.append(day)
        day += timedelta(days=1)
    moments.append(last)
    if len(moments) > MAX_SERIES_POINTS:
        stride = math.ceil(len(moments) / MAX_SERIES_POINTS)
        moments = moments[::-1][::stride][::-1]
        if moments[-1] != last:
            moments.append(last)
    points = []
    for moment, at in zip(
        moments, selectors.totals_over_time(items, arms, window=window, moments=moments), strict=True
    ):
        analysis = analyze(
            at,
            metric=experiment.metric,
            method=experiment.method,
            alpha=float(experiment.alpha),
            correction=experiment.correction,
            relative=experiment.relative,
            planned_sample_size=experiment.planned_sample_size,
        )
        if analysis is None:
            continue
        points.append(
            {
                "at": moment.isoformat(),
                "recipients": sum(a.n for a in at),
                "comparisons": [
                    {
                        "variant": c.variant,
                        "effect": _finite(c.comparison.effect),
                        "ci_low": c.comparison.ci_low,
                        "ci_high": c.comparison.ci_high,
                    }
                    for c in analysis.comparisons
                ],
            }
        )
    return points


def control_report(experiment: Experiment) -> dict | None:
    """Sending against not sending: everyone treated versus the campaign's control group (ITT)."""
    campaign = experiment.campaign
    if not campaign.control_percent or experiment.metric in (Metric.OPEN_RATE, Metric.CLICK_RATE):
        return None
    items = selectors.control_timelines(campaign=campaign)
    window = timedelta(hours=campaign.conversion_window_hours)
    arms = [
        ArmTotals(
            key=CONTROL_KEY, name="Control group", variant_id=None, weight=float(campaign.control_percent)
        ),
        ArmTotals(
            key="treated",
            name="Everyone sent to",
            variant_id=None,
            weight=100 - float(campaign.control_percent),
        ),
    ]
    arms = selectors.totals(items, arms, window=window)
    common = {
        "metric": experiment.metric,
        "method": "frequentist",
        "alpha": float(experiment.alpha),
        "correction": "none",
        "weights": [a.weight for a in arms],
    }
    absolute = analyze(arms, relative=False, **common)
    relative = analyze(arms, relative=True, **common)
    analysis = relative if experiment.relative else absolute
    return {
        "arms": [a.as_dict() for a in arms],
        "comparison": _comparisons(absolute, relative, experiment.relative)[0]
        if analysis is not None
        else None,
        "verdict": overall_verdict(
            analysis, final=False, label=metric_label(experiment.metric), absolute=absolute
        ),
    }


def waiting_for_send_time(*, campaign: Campaign, variants: Sequence[Variant]) -> bool:
    """True while variants with different send times still have randomised messages to send."""
    if not any(v.has_own_send_time for v in variants):
        return False
    return Send.objects.filter(
        campaign=campaign, arm=Arm.VARIANT, state__in=[*CLAIMABLE_STATES, SendState.SENDING]
    ).exists()


def variant_design(campaign: Campaign, variants: Sequence[Variant]) -> list[dict]:
    """What each variant varies besides its message, for the results table's header."""
    return [
        {
            "variant_id": v.pk,
            "name": v.name,
            "channel": v.channel_on(campaign),
            "send_local_time": v.send_local_time.isoformat() if v.send_local_time else None,
            "send_delay_minutes": v.send_delay_minutes,
            "recommender": v.recommender.name if v.recommender_id else None,
        }
        for v in sorted(variants, key=lambda v: v.pk)
    ]


# --------------------------------------------------------------------------------------------
# Caching: the results page and the API are read far more often than new data arrives.


def data_version(experiment: Experiment) -> str:
    """A cheap fingerprint of everything the results read; it changes whenever new data arrives.

    One query of index-only counts and maxima: the campaign's ledger rows by the states the
    results read (sent; suppressed or capped), its tracking events, the newest order anywhere
    (every order of an assigned customer counts, intention to treat), the campaign's and its
    variants' last change, and the experiment's own state and decision. Changes that keep all of
    these equal (an existing order edited in place) show after EXPERIMENT_RESULTS_CACHE_SECONDS.
    """
    send_table = Send._meta.db_table
    event_table = TrackingEvent._meta.db_table
    order_table = Order._meta.db_table
    variant_table = Variant._meta.db_table
    sql = f"""
        SELECT
          (SELECT count(*) FROM {send_table} WHERE campaign_id = %s),
          (SELECT count(*) FROM {send_table} WHERE campaign_id = %s AND state = 'sent'),
          (SELECT count(*) FROM {send_table} WHERE campaign_id = %s AND state IN ('suppressed', 'capped')),
          (SELECT count(*) FROM {event_table} WHERE campaign_id = %s),
          (SELECT max(id) FROM {order_table}),
          (SELECT max(updated_at) FROM {variant_table} WHERE campaign_id = %s)
    """  # noqa: S608 - table names from the models, values bound
    pk = experiment.campaign_id
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk, pk, pk, pk, pk])
        counts = cursor.fetchone()
    row = (
        Experiment.objects.filter(pk=experiment.pk)
        .values_list("updated_at", "state", "winner_id", "campaign__status", "campaign__updated_at")
        .first()
    )
    return hashlib.sha256(repr((counts, row)).encode()).hexdigest()[:32]


def cache_key(experiment: Experiment, version: str, with_series: bool) -> str:
    return f"experiment-results:{experiment.pk}:{int(with_series)}:{version}"


def cached_experiment_results(*, experiment: Experiment, with_series: bool = True) -> dict:
    """`experiment_results`, computed once per data version and kept in the cache (Redis).

    The key carries the data version, so new sends, tracking events or orders make a new key and
    the old entry simply expires; nothing has to remember to invalidate it. The time limit bounds
    what the version cannot see: the clock moving the series' last point, an order edited in place.
    """
    version = data_version(experiment)
    key = cache_key(experiment, version, with_series)
    found = cache.get(key)
    if found is not None:
        return found
    results = experiment_results(experiment=experiment, with_series=with_series)
    results["data_version"] = version
    cache.set(key, results, timeout=getattr(settings, "EXPERIMENT_RESULTS_CACHE_SECONDS", 300))
    return results


def experiment_results(
    *, experiment: Experiment, with_series: bool = True, now: datetime | None = None
) -> dict:
    """Everything the results page and the API show, as plain JSON-ready data."""
    now = now or timezone.now()
    campaign = experiment.campaign
    variants = list(campaign.variants.select_related("recommender"))
    arms = arms_for(experiment, variants)
    window = timedelta(hours=campaign.conversion_window_hours)
    items = selectors.variant_timelines(campaign=campaign, variants=variants)
    totals = selectors.totals(items, arms, window=window)
    bandit = experiment.mode == Mode.BANDIT
    common = {
        "metric": experiment.metric,
        "method": experiment.method,
        "alpha": float(experiment.alpha),
        "correction": experiment.correction,
        "planned_sample_size": experiment.planned_sample_size,
        # Bandit weights move from run to run, so the configured weights say nothing about the split.
        "weights": None if bandit else [a.weight for a in totals],
    }
    absolute = analyze(totals, relative=False, **common)
    relative = analyze(totals, relative=True, **common)
    headline = relative if experiment.relative else absolute
    comparisons = _comparisons(absolute, relative, experiment.relative) if headline is not None else []
    if comparisons and experiment.method != "bayesian":
        # Chance to win and expected loss are what a marketer acts on, whatever the method: they
        # come from the Bayesian model beside the chosen method's interval and verdict.
        bayes = analyze(totals, **{**common, "method": "bayesian", "correction": "none"}, relative=False)
        for row, other in zip(comparisons, bayes.comparisons, strict=True):
            row["chance_to_win"] = other.comparison.chance_to_win
            row["expected_loss"] = other.comparison.expected_loss
            row["chance_to_win_from"] = "bayesian model (uniform prior)"
    label = metric_label(experiment.metric)
    srm = None
    # Variants with their own send times go out at different moments: until the last of them is
    # out, the recipients so far are not split by the weights, and a mismatch says nothing.
    waiting = waiting_for_send_time(campaign=campaign, variants=variants)
    if headline is not None and not bandit:
        check = headline.sample_ratio
        srm = {
            "p_value": check.p_value,
            "mismatch": check.mismatch and not waiting,
            "observed": list(check.observed),
            "expected": [round(e, 2) for e in check.expected],
            "warning": headline.srm_warning if not waiting else None,
        }
    final = experiment.state == "decided" or campaign.status in ("sent", "cancelled")
    return {
        "experiment": experiment.pk,
        "campaign": campaign.pk,
        "campaign_name": campaign.name,
        "mode": experiment.mode,
        "state": experiment.state,
        "metric": experiment.metric,
        "metric_label": label,
        "method": experiment.method,
        "alpha": float(experiment.alpha),
        "correction": experiment.correction if experiment.method != "bayesian" else "none",
        "relative": experiment.relative,
        "baseline": display_name(totals[0].name) if totals else None,
        "arms": [a.as_dict() for a in totals],
        "comparisons": comparisons,
        "srm": srm,
        "srm_note": "Not checked for a bandit: its split changes from run to run by design."
        if bandit
        else (
            "Not checked yet: some variants' messages are waiting for their send time, so the "
            "recipients so far are not split by the weights."
            if waiting
            else None
        ),
        "guardrails": guardrails(experiment, totals),
        "verdict": overall_verdict(
            headline, final=final, label=label, absolute=absolute, srm_checked=not waiting
        ),
        "variants": variant_design(campaign, variants),
        "control": control_report(experiment),
        "series": series(experiment, items, totals, window=window, now=now) if with_series else None,
        "decision": {
            "winner": experiment.winner.name if experiment.winner_id else None,
            "winner_id": experiment.winner_id,
            "reason": experiment.decision_reason,
            "decided_at": experiment.decided_at.isoformat() if experiment.decided_at else None,
            "sample_completed_at": experiment.sample_completed_at.isoformat()
            if experiment.sample_completed_at
            else None,
            # When beat's decider will choose (test-then-send, once the sample is out).
            "due_at": (
                experiment.sample_completed_at + timedelta(minutes=experiment.wait_minutes)
            ).isoformat()
            if experiment.sample_completed_at and experiment.state == "sampling"
            else None,
        },
        "allocation": experiment.allocation or None,
        "computed_at": now.isoformat(),
    }
