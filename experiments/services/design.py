"""What an experiment asks of the campaign machinery: launch checks, and how each run's ledger splits.

The campaign's ledger writer calls `ledger_plan` once per run. For an A/B test the plan changes
nothing (the variants' weights split everyone). For test-then-send it holds back everyone outside
the sample: their rows wait (deferred, no due time) until the winner flow releases them with the
winning variant. For a bandit it replaces the weights with this run's Thompson-sampling shares.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.utils import timezone

from campaigns.models import Campaign, ScheduleKind, Variant
from experiments.assignment import assignment_point
from experiments.models import Experiment, ExperimentState, Mode

logger = logging.getLogger(__name__)

WAITING_REASON = "waiting for the A/B test's winner"
ONE_OFF_KINDS = (ScheduleKind.NOW, ScheduleKind.AT, ScheduleKind.LOCAL_TIME)
ONGOING_KINDS = (ScheduleKind.RECURRING, ScheduleKind.TRIGGERED)


def experiment_of(campaign: Campaign) -> Experiment | None:
    return Experiment.objects.filter(campaign_id=campaign.pk).select_related("default_variant").first()


def ordered_variants(experiment: Experiment, variants: Sequence[Variant]) -> list[Variant]:
    """The default variant first (the baseline of every comparison), then the others by id."""
    variants = sorted(variants, key=lambda v: v.pk)
    default_id = experiment.default_variant_id
    if default_id is None or not any(v.pk == default_id for v in variants):
        return variants
    return [v for v in variants if v.pk == default_id] + [v for v in variants if v.pk != default_id]


def experiment_problems(*, campaign: Campaign, variants: Sequence[Variant]) -> dict[str, list[str]]:
    """What stops this campaign's experiment from running, in the marketer's words (merged into launch)."""
    experiment = experiment_of(campaign)
    if experiment is None:
        return {}
    problems: dict[str, list[str]] = {}

    def add(message: str) -> None:
        problems.setdefault("experiment", []).append(message)

    if len(variants) < 2:
        add("An experiment compares variants: add at least two, or remove the experiment.")
    if experiment.default_variant_id and not any(v.pk == experiment.default_variant_id for v in variants):
        add("The default variant must be one of this campaign's variants.")
    if experiment.mode == Mode.TEST_THEN_SEND and campaign.schedule_kind not in ONE_OFF_KINDS:
        add("Test-then-send needs a one-off campaign (now, at a time, or in each customer's timezone).")
    if experiment.mode == Mode.BANDIT:
        if campaign.schedule_kind not in ONGOING_KINDS:
            add("A bandit learns across runs: use it with a recurring or triggered campaign.")
        if float(experiment.bandit_floor) * len(variants) > 1:
            add(f"A floor of {experiment.bandit_floor} is too high for {len(variants)} variants.")
    try:
        experiment.clean()
    except Exception as exc:  # noqa: BLE001 - a ValidationError's messages, whatever their shape
        for messages in getattr(exc, "message_dict", {"experiment": [str(exc)]}).values():
            for message in messages:
                add(message)
    return problems


def start_experiment(*, campaign: Campaign) -> None:
    """At launch: test-then-send starts sampling, the other modes start running."""
    target = ExperimentState.SAMPLING
    Experiment.objects.filter(campaign_id=campaign.pk, state=ExperimentState.DESIGN).exclude(
        mode=Mode.TEST_THEN_SEND
    ).update(state=ExperimentState.RUNNING, updated_at=timezone.now())
    Experiment.objects.filter(
        campaign_id=campaign.pk, state=ExperimentState.DESIGN, mode=Mode.TEST_THEN_SEND
    ).update(state=target, updated_at=timezone.now())


@dataclass(frozen=True)
class LedgerPlan:
    """How one run's ledger deviates from the plain weighted split (see the module docstring)."""

    weights: tuple[float, ...] | None = None
    sample_share: float | None = None
    sample_salt: str = ""
    waiting_variant_id: int | None = None
    waiting_reason: str = WAITING_REASON
    notes: dict = field(default_factory=dict)

    def holds_back(self, customer_id: int) -> bool:
        if self.sample_share is None:
            return False
        return assignment_point(self.sample_salt, customer_id) >= self.sample_share


NO_PLAN = LedgerPlan()


def sample_salt(campaign: Campaign) -> str:
    """The sample is drawn with its own salt, independent of the variant split and the control group."""
    return f"{campaign.assignment_salt}:sample"


def ledger_plan(*, campaign: Campaign, variants: Sequence[Variant]) -> LedgerPlan:
    experiment = experiment_of(campaign)
    if experiment is None or len(variants) < 2:
        return NO_PLAN
    if experiment.state == ExperimentState.DESIGN:
        # Created outside the launch (a script, an older campaign): it starts with its first ledger.
        start_experiment(campaign=campaign)
        experiment.refresh_from_db()
    if experiment.mode == Mode.TEST_THEN_SEND:
        if experiment.state != ExperimentState.SAMPLING:
            # Decided already (a writer re-run after the decision): nobody waits any more; the
            # release has given every waiting row the winner.
            return NO_PLAN
        default = ordered_variants(experiment, variants)[0]
        return LedgerPlan(
            sample_share=float(experiment.sample_percent) / 100,
            sample_salt=sample_salt(campaign),
            waiting_variant_id=default.pk,
        )
    if experiment.mode == Mode.BANDIT:
        from experiments.services.bandit import allocate

        shares = allocate(experiment=experiment, variants=variants)
        return LedgerPlan(weights=tuple(shares))
    return NO_PLAN
