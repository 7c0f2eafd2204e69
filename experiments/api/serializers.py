"""Experiments over the API: the design of a campaign's experiment, and its decision (read-only)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from campaigns.models import Campaign, CampaignStatus, Variant
from experiments.models import Experiment, ExperimentState

DESIGN_FIELDS = [
    "metric",
    "relative",
    "method",
    "alpha",
    "correction",
    "planned_sample_size",
    "max_unsubscribe_rate",
    "max_complaint_rate",
    "mode",
    "sample_percent",
    "wait_minutes",
    "min_sample_per_arm",
    "decision_rule",
    "chance_threshold",
    "default_variant",
    "bandit_floor",
]


class ExperimentSerializer(serializers.ModelSerializer):
    campaign = serializers.PrimaryKeyRelatedField(queryset=Campaign.objects.all())
    default_variant = serializers.PrimaryKeyRelatedField(
        queryset=Variant.objects.all(), required=False, allow_null=True
    )
    winner = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "campaign",
            *DESIGN_FIELDS,
            "state",
            "winner",
            "decision_reason",
            "decided_at",
            "sample_completed_at",
            "allocation",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "state",
            "winner",
            "decision_reason",
            "decided_at",
            "sample_completed_at",
            "allocation",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {
            "wait_minutes": {"max_value": 60 * 24 * 30},
            "min_sample_per_arm": {"max_value": 10_000_000},
            "planned_sample_size": {"min_value": 2, "max_value": 100_000_000},
        }

    def validate_campaign(self, campaign: Campaign) -> Campaign:
        if self.instance is not None and campaign.pk != self.instance.campaign_id:
            raise serializers.ValidationError("An experiment stays with its campaign.")
        if self.instance is None and Experiment.objects.filter(campaign=campaign).exists():
            raise serializers.ValidationError("This campaign already has an experiment; change that one.")
        return campaign

    def validate(self, attrs):
        campaign = attrs.get("campaign") or (self.instance.campaign if self.instance else None)
        if campaign is not None and campaign.status != CampaignStatus.DRAFT:
            # The design is fixed at launch: the ledger is written from it.
            raise serializers.ValidationError(
                {
                    "campaign": [
                        f"A {campaign.status} campaign's experiment cannot be changed; only a draft's."
                    ]
                }
            )
        if self.instance is not None and self.instance.state != ExperimentState.DESIGN:
            raise serializers.ValidationError(
                {"state": ["The experiment has started; its design can no longer change."]}
            )
        candidate = Experiment(**{**self._current(), **attrs})
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        return attrs

    def _current(self) -> dict:
        if self.instance is None:
            return {}
        return {f: getattr(self.instance, f) for f in ["campaign", *DESIGN_FIELDS]}


class DecideSerializer(serializers.Serializer):
    now = serializers.BooleanField(
        default=False, help_text="Decide now, without waiting for the rest of the window"
    )


class HoldoutQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=366, default=30)


class ResultsQuerySerializer(serializers.Serializer):
    series = serializers.BooleanField(default=True)
