"""An experiment: how a campaign's variants are compared, and what was decided.

One per campaign. The design (metric, guardrails, method, mode) is fixed before the campaign
launches; the decision record (winner, reason, when, and the numbers it was based on) is written
once by the winner flow, under a state transition, so a second decider changes nothing.

The global holdout (customers who receive no campaign at all) is configured in settings
(`CAMPAIGN_GLOBAL_HOLDOUT_PERCENT`, `CAMPAIGN_GLOBAL_HOLDOUT_SALT`), not here: it spans every
campaign, and changing it reassigns customers, which must be a deployment decision.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel


class Metric(models.TextChoices):
    OPEN_RATE = "open_rate", "Open rate (human opens only)"
    CLICK_RATE = "click_rate", "Click rate"
    CONVERSION_RATE = "conversion_rate", "Conversion rate (any order in the window)"
    REVENUE_PER_RECIPIENT = "revenue_per_recipient", "Revenue per recipient"


class Method(models.TextChoices):
    FREQUENTIST = "frequentist", "Frequentist (fixed horizon)"
    BAYESIAN = "bayesian", "Bayesian (chance to win)"
    SEQUENTIAL = "sequential", "Sequential (always valid, safe to peek)"


class Correction(models.TextChoices):
    NONE = "none", "None"
    HOLM = "holm", "Holm (family-wise error)"
    BH = "bh", "Benjamini–Hochberg (false discovery rate)"


class Mode(models.TextChoices):
    AB = "ab", "A/B test (everyone gets a variant)"
    TEST_THEN_SEND = "test_then_send", "Test on a sample, then send the winner to the rest"
    BANDIT = "bandit", "Thompson-sampling bandit (recurring and triggered campaigns)"


class DecisionRule(models.TextChoices):
    SIGNIFICANCE = "significance", "Significantly better than the default (p below alpha)"
    CHANCE_TO_WIN = "chance_to_win", "Chance to beat the default above the threshold"


class ExperimentState(models.TextChoices):
    DESIGN = "design", "Being designed"
    SAMPLING = "sampling", "Sample sent, waiting for the window"
    DECIDED = "decided", "Winner chosen and sent to the rest"
    RUNNING = "running", "Running"


def open_rate_problem(campaign, variants) -> str | None:
    """Why open rate cannot compare these variants (push has no open tracking), or None."""
    push = [v.name for v in variants if v.channel_on(campaign) == "push"]
    if not push:
        return None
    which = "Variant " + push[0] if len(push) == 1 else "Variants " + ", ".join(push)
    return (
        f"Opens are not tracked for push, and {which} {'goes' if len(push) == 1 else 'go'} out by push: "
        "choose click rate, conversion rate or revenue per recipient."
    )


class Experiment(TimeStampedModel):
    campaign = models.OneToOneField("campaigns.Campaign", on_delete=models.CASCADE, related_name="experiment")

    metric = models.CharField(max_length=24, choices=Metric.choices, default=Metric.CLICK_RATE)
    relative = models.BooleanField(default=True, help_text="Report effects relative to the default variant")
    method = models.CharField(max_length=12, choices=Method.choices, default=Method.FREQUENTIST)
    alpha = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.05"),
        validators=[MinValueValidator(Decimal("0.001")), MaxValueValidator(Decimal("0.5"))],
    )
    correction = models.CharField(max_length=4, choices=Correction.choices, default=Correction.HOLM)
    planned_sample_size = models.PositiveIntegerField(
        default=5000, help_text="Sequential method: customers per variant the interval is tuned for"
    )

    # Guardrails: a variant above either rate is never chosen, whatever its primary metric says.
    max_unsubscribe_rate = models.DecimalField(
        max_digits=6, decimal_places=4, null=True, blank=True, help_text="e.g. 0.005 for 0.5 %"
    )
    max_complaint_rate = models.DecimalField(
        max_digits=6, decimal_places=4, null=True, blank=True, help_text="e.g. 0.001 for 0.1 %"
    )

    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.AB)
    # Test-then-send
    sample_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("20"),
        validators=[MinValueValidator(Decimal("1")), MaxValueValidator(Decimal("90"))],
        help_text="Share of the audience (after holdout and control) that receives the test",
    )
    wait_minutes = models.PositiveIntegerField(
        default=240, help_text="How long after the sample is sent the winner is chosen"
    )
    min_sample_per_arm = models.PositiveIntegerField(
        default=100, help_text="Fewer recipients than this in any variant: the default is kept"
    )
    decision_rule = models.CharField(
        max_length=16, choices=DecisionRule.choices, default=DecisionRule.SIGNIFICANCE
    )
    chance_threshold = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.95"),
        validators=[MinValueValidator(Decimal("0.5")), MaxValueValidator(Decimal("0.999"))],
        help_text="Chance-to-win rule: the chance a variant must reach",
    )
    default_variant = models.ForeignKey(
        "campaigns.Variant",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Baseline of every comparison, and what is sent if nothing wins (empty: the first)",
    )
    # Bandit
    bandit_floor = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.05"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("0.5"))],
        help_text="Every variant keeps at least this share of each run",
    )
    allocation = models.JSONField(
        default=dict, blank=True, help_text="Bandit: the shares used by the latest run, by variant id"
    )

    # State and the decision record
    state = models.CharField(max_length=10, choices=ExperimentState.choices, default=ExperimentState.DESIGN)
    sample_completed_at = models.DateTimeField(null=True, blank=True)
    winner = models.ForeignKey(
        "campaigns.Variant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_reason = models.TextField(blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_snapshot = models.JSONField(
        default=dict, blank=True, help_text="The per-variant numbers the decision was based on"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(alpha__gt=0) & Q(alpha__lte=0.5), name="experiment_alpha"),
            models.CheckConstraint(
                condition=Q(sample_percent__gte=1) & Q(sample_percent__lte=90), name="experiment_sample_pct"
            ),
            models.CheckConstraint(
                condition=Q(bandit_floor__gt=0) & Q(bandit_floor__lte=0.5), name="experiment_bandit_floor"
            ),
        ]
        indexes = [models.Index(fields=["state", "mode"], name="experiment_state_mode_idx")]

    def __str__(self) -> str:
        return f"Experiment on {self.campaign}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.method == Method.BAYESIAN and self.correction != Correction.NONE:
            errors["correction"] = "Corrections adjust p-values; the Bayesian method has none. Choose None."
        if (
            self.default_variant_id
            and self.campaign_id
            and self.default_variant.campaign_id != self.campaign_id
        ):
            errors["default_variant"] = "Choose one of this campaign's variants."
        if self.mode == Mode.BANDIT and self.metric == Metric.REVENUE_PER_RECIPIENT:
            errors["metric"] = "The bandit learns from a rate (open, click or conversion), not from revenue."
        # A form that saves the variants together with the experiment (the admin's campaign page)
        # sets `variants_to_check` to the variants as posted, so the check sees this save's
        # channels rather than the saved ones.
        pending = getattr(self, "variants_to_check", None)
        if self.metric == Metric.OPEN_RATE and (pending is not None or self.campaign_id):
            variants = pending if pending is not None else list(self.campaign.variants.all())
            problem = open_rate_problem(self.campaign, variants)
            if problem:
                errors["metric"] = problem
        if errors:
            raise ValidationError(errors)
