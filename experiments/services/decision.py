"""Test-then-send: after the window, choose the winner by the experiment's rule and release the rest.

The rule is explicit and conservative. The default variant is kept unless a challenger is shown
to be better: every variant reached the minimum sample, the split is not broken (SRM), the
challenger stays within the guardrails, and it beats the default by the rule - significantly
(its interval, corrected for the number of challengers, lies above zero) or with a chance to win
above the threshold. Among several such challengers the one with the best observed metric wins.
Only improvements count, so with no true difference a challenger replaces the default in about
alpha / 2 of tests (significance rule) or 1 - threshold (chance rule).

`decide_experiment` is a state transition (sampling -> decided) under a row lock, so two beats or
a retried task decide once; the roll-out rows are released in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from campaigns.models import (
    CLAIMABLE_STATES,
    Arm,
    Campaign,
    CampaignRun,
    RunState,
    ScheduleKind,
    Send,
    SendState,
    Variant,
)
from campaigns.services.launch import variant_due
from experiments import selectors
from experiments.models import DecisionRule, Experiment, ExperimentState, Mode
from experiments.selectors import ArmTotals
from experiments.services.results import METRICS, analyze, arms_for, decisive, metric_label
from experiments.stats.verdict import display_name

logger = logging.getLogger(__name__)

DECIDER_LOCK = 0x5EAC_0E01


@dataclass(frozen=True)
class DecisionConfig:
    metric: str
    method: str = "frequentist"
    alpha: float = 0.05
    correction: str = "holm"
    rule: str = DecisionRule.SIGNIFICANCE
    chance_threshold: float = 0.95
    min_sample: int = 100
    max_unsubscribe_rate: float | None = None
    max_complaint_rate: float | None = None
    planned_sample_size: int = 5000

    @classmethod
    def of(cls, experiment: Experiment) -> DecisionConfig:
        return cls(
            metric=experiment.metric,
            method=experiment.method,
            alpha=float(experiment.alpha),
            correction=experiment.correction,
            rule=experiment.decision_rule,
            chance_threshold=float(experiment.chance_threshold),
            min_sample=experiment.min_sample_per_arm,
            max_unsubscribe_rate=None
            if experiment.max_unsubscribe_rate is None
            else float(experiment.max_unsubscribe_rate),
            max_complaint_rate=None
            if experiment.max_complaint_rate is None
            else float(experiment.max_complaint_rate),
            planned_sample_size=experiment.planned_sample_size,
        )


@dataclass(frozen=True)
class Decision:
    winner: ArmTotals
    switched: bool
    reason: str


def _metric_value(arm: ArmTotals, metric: str) -> float:
    kind, count_field, _ = METRICS[metric]
    if kind == "proportion":
        return getattr(arm, count_field) / arm.n
    return arm.revenue / arm.n


def _breaches(arm: ArmTotals, config: DecisionConfig) -> list[str]:
    found = []
    if config.max_unsubscribe_rate is not None and arm.unsubscribes / arm.n > config.max_unsubscribe_rate:
        found.append(
            f"unsubscribe rate {arm.unsubscribes / arm.n:.2%} above {config.max_unsubscribe_rate:.2%}"
        )
    if config.max_complaint_rate is not None and arm.complaints / arm.n > config.max_complaint_rate:
        found.append(f"complaint rate {arm.complaints / arm.n:.2%} above {config.max_complaint_rate:.2%}")
    return found


def choose_winner(arms: Sequence[ArmTotals], config: DecisionConfig, *, weights=None) -> Decision:
    """The decision rule on totals alone (arms[0] is the default); no database, so it can be simulated."""
    default = arms[0]
    keep = f"{display_name(default.name)}, the default, is sent to the rest."
    label = metric_label(config.metric)
    small = [a for a in arms if a.n < config.min_sample]
    if small:
        listed = ", ".join(f"{display_name(a.name)} had {a.n}" for a in small)
        return Decision(
            default,
            False,
            f"Not enough recipients to decide ({listed}; the minimum is {config.min_sample} per variant). {keep}",
        )
    if config.rule == DecisionRule.CHANCE_TO_WIN:
        analysis = analyze(
            arms,
            metric=config.metric,
            method="bayesian",
            alpha=config.alpha,
            correction="none",
            relative=False,
            weights=weights,
        )
    else:
        analysis = analyze(
            arms,
            metric=config.metric,
            method=config.method,
            alpha=config.alpha,
            correction=config.correction,
            relative=False,
            weights=weights,
            planned_sample_size=config.planned_sample_size,
        )
    assert analysis is not None  # every arm has at least the minimum sample (>= 1)
    if analysis.srm_warning:
        return Decision(default, False, f"{analysis.srm_warning} {keep}")
    candidates: list[tuple[ArmTotals, str]] = []
    blocked: list[str] = []
    for arm, comparison in zip(arms[1:], analysis.comparisons, strict=True):
        c = comparison.comparison
        if config.rule == DecisionRule.CHANCE_TO_WIN:
            better = c.chance_to_win is not None and c.chance_to_win >= config.chance_threshold
        else:
            better = decisive(c) > 0
        if not better:
            continue
        breaches = _breaches(arm, config)
        if breaches:
            blocked.append(
                f"{display_name(arm.name)} did better but broke a guardrail ({'; '.join(breaches)})"
            )
            continue
        candidates.append((arm, comparison.verdict))
    if not candidates:
        rule = (
            f"a chance to win of at least {config.chance_threshold:.0%}"
            if config.rule == DecisionRule.CHANCE_TO_WIN
            else f"a significant improvement at alpha {config.alpha:g}"
            + (f" ({config.correction} correction)" if config.correction != "none" and len(arms) > 2 else "")
        )
        details = " ".join(c.verdict for c in analysis.comparisons)
        extra = (" " + ". ".join(blocked) + ".") if blocked else ""
        return Decision(
            default,
            False,
            f"No variant beat {display_name(default.name)} on {label} with {rule}.{extra} {details} {keep}",
        )
    best, sentence = max(candidates, key=lambda item: _metric_value(item[0], config.metric))
    return Decision(
        best, True, f"{display_name(best.name)} wins on {label}: {sentence} It is sent to the rest."
    )


def _snapshot(arms: Sequence[ArmTotals]) -> dict:
    return {"arms": [a.as_dict() for a in arms]}


def sample_complete_at(experiment: Experiment) -> datetime | None:
    """When the last message of the sample went out, once nothing of the sample is left to send."""
    campaign = experiment.campaign
    runs = CampaignRun.objects.filter(campaign=campaign)
    if not runs.exists() or runs.filter(state__in=[RunState.PENDING, RunState.WRITING]).exists():
        return None
    sample = Send.objects.filter(campaign=campaign, arm=Arm.VARIANT)
    if sample.filter(state__in=[*CLAIMABLE_STATES, SendState.SENDING]).exists():
        return None
    return sample.aggregate(last=Max("sent_at"))["last"] or timezone.now()


def decide_experiment(*, experiment_id: int, now: datetime | None = None, force: bool = False) -> bool:
    """Decide a sampling experiment whose window has passed (or now, with `force`); True if it decided."""
    now = now or timezone.now()
    with transaction.atomic():
        experiment = (
            Experiment.objects.select_for_update()
            .select_related("campaign")
            .filter(pk=experiment_id, state=ExperimentState.SAMPLING, mode=Mode.TEST_THEN_SEND)
            .first()
        )
        if experiment is None:
            return False
        if experiment.sample_completed_at is None:
            completed = sample_complete_at(experiment)
            if completed is None and not force:
                return False
            experiment.sample_completed_at = completed or now
            experiment.save(update_fields=["sample_completed_at", "updated_at"])
        if not force and now < experiment.sample_completed_at + timedelta(minutes=experiment.wait_minutes):
            return False
        campaign = experiment.campaign
        variants = list(campaign.variants.all())
        arms = arms_for(experiment, variants)
        items = selectors.variant_timelines(campaign=campaign, variants=variants)
        window = timedelta(hours=campaign.conversion_window_hours)
        totals = selectors.totals(items, arms, window=window, until=now)
        decision = choose_winner(totals, DecisionConfig.of(experiment), weights=[a.weight for a in totals])
        winner_id = decision.winner.variant_id
        experiment.state = ExperimentState.DECIDED
        experiment.winner_id = winner_id
        experiment.decision_reason = decision.reason
        experiment.decided_at = now
        experiment.decision_snapshot = {**_snapshot(totals), "switched": decision.switched}
        experiment.save(
            update_fields=[
                "state",
                "winner",
                "decision_reason",
                "decided_at",
                "decision_snapshot",
                "updated_at",
            ]
        )
        released = release_rollout(
            campaign_id=campaign.pk, variant_id=winner_id, now=min(now, timezone.now())
        )
        logger.info(
            "experiment %s: winner variant %s (switched=%s), %s rows released",
            experiment.pk,
            winner_id,
            decision.switched,
            released,
        )
        if released:
            from campaigns.services.sending import enqueue_senders

            transaction.on_commit(lambda: enqueue_senders(campaign_id=campaign.pk))
    return True


RELEASE_PAGE = 5000


def release_rollout(*, campaign_id: int, variant_id: int, now: datetime) -> int:
    """The rows waiting for the winner get its content, channel and send time (send-time checks still apply).

    A winner without a send time of its own is due now, in one UPDATE. A winner with one (a local
    time, a delay) goes to the rest at that time: due rows are written a page at a time, deferred
    with `not_before` for the dispatcher, never held in a task countdown.
    """
    variant = Variant.objects.select_related("campaign").get(pk=variant_id)
    campaign = variant.campaign
    channel = variant.channel_on(campaign)
    waiting = Send.objects.filter(
        campaign_id=campaign_id, arm=Arm.ROLLOUT, state=SendState.DEFERRED, not_before__isnull=True
    )
    if not variant.has_own_send_time:
        return waiting.update(
            variant_id=variant_id,
            channel=channel,
            state=SendState.QUEUED,
            reason="",
            not_before=now,
            updated_at=now,
        )
    released = 0
    last_id = 0
    while True:
        page = list(
            waiting.filter(pk__gt=last_id)
            .order_by("pk")
            .values_list("pk", "customer__timezone")[:RELEASE_PAGE]
        )
        if not page:
            return released
        last_id = page[-1][0]
        sends = []
        for pk, customer_timezone in page:
            due = variant_due(_released_campaign(campaign), variant, now, customer_timezone or "")
            later = due > now
            sends.append(
                Send(
                    pk=pk,
                    variant_id=variant_id,
                    channel=channel,
                    state=SendState.DEFERRED if later else SendState.QUEUED,
                    reason="waiting for its send time" if later else "",
                    not_before=due,
                    updated_at=now,
                )
            )
        Send.objects.bulk_update(
            sends, ["variant_id", "channel", "state", "reason", "not_before", "updated_at"], batch_size=1000
        )
        released += len(sends)


def _released_campaign(campaign: Campaign) -> Campaign:
    """The campaign as the roll-out sees it: its date has passed, so a local time means the next one."""
    if campaign.schedule_kind != ScheduleKind.LOCAL_TIME:
        return campaign
    return Campaign(
        pk=campaign.pk, schedule_kind=ScheduleKind.NOW, schedule_timezone=campaign.schedule_timezone
    )


@contextmanager
def _only_one_decider():
    """A PostgreSQL session lock so overlapping beats do not both walk the list (each decision is
    safe anyway: a state transition under a row lock); elsewhere (the SQLite demo) always held."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [DECIDER_LOCK])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [DECIDER_LOCK])


def decide_due(*, now: datetime | None = None) -> dict[str, int]:
    """The minute job: every sampling experiment whose window has passed gets its decision."""
    with _only_one_decider() as held:
        if not held:
            return {"skipped": 1}
        return _decide_due(now=now)


def _decide_due(*, now: datetime | None) -> dict[str, int]:
    now = now or timezone.now()
    decided = 0
    ids = list(
        Experiment.objects.filter(state=ExperimentState.SAMPLING, mode=Mode.TEST_THEN_SEND).values_list(
            "pk", flat=True
        )
    )
    for experiment_id in ids:
        try:
            decided += decide_experiment(experiment_id=experiment_id, now=now)
        except Exception:  # one broken experiment must not stop the others
            logger.exception("experiment %s: the decision failed; it is retried next minute", experiment_id)
    return {"sampling": len(ids), "decided": decided}
