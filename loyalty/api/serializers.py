from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from core.api import StrictFieldsMixin
from core.openapi import FlexibleDecimalField
from core.reference import is_known_currency
from core.rows import FieldInvalid, check_json_limits
from loyalty.models import LoyaltyProgram, Membership, PointsTransaction, Redemption, Reward, Tier


class ProgramSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    points_per_currency_unit = FlexibleDecimalField(
        max_digits=8, decimal_places=3, min_value=0, required=False
    )

    class Meta:
        model = LoyaltyProgram
        fields = [
            "id",
            "name",
            "slug",
            "currency",
            "points_per_currency_unit",
            "event_points",
            "points_expiry_days",
            "allow_negative_balance",
            "active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"points_expiry_days": {"min_value": 1, "max_value": 36500}}

    def validate_currency(self, value: str) -> str:
        if not is_known_currency(value.upper()):
            raise serializers.ValidationError("Unknown currency; use an ISO 4217 code such as GBP.")
        return value.upper()

    def validate_event_points(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object of event type or name → points.")
        try:
            check_json_limits(value)
        except FieldInvalid as exc:
            raise serializers.ValidationError(str(exc)) from None
        for key, points in value.items():
            if not isinstance(points, int) or isinstance(points, bool) or not 0 <= points <= 1_000_000:
                raise serializers.ValidationError(
                    f"Points for {key!r} must be a whole number from 0 to 1000000."
                )
        return value


class TierSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    multiplier = FlexibleDecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0.01"), required=False
    )

    class Meta:
        model = Tier
        fields = ["id", "program", "name", "threshold", "benefits", "multiplier"]
        extra_kwargs = {"threshold": {"max_value": 2**31 - 1}}


class MembershipSerializer(serializers.ModelSerializer):
    customer = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    program = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tier = serializers.CharField(source="tier.name", read_only=True, allow_null=True)

    class Meta:
        model = Membership
        fields = [
            "id",
            "customer",
            "program",
            "tier",
            "balance",
            "lifetime_points",
            "joined_at",
            "tier_changed_at",
        ]


class EnrolSerializer(StrictFieldsMixin, serializers.Serializer):
    customer = serializers.CharField(max_length=191, help_text="The customer's external_id")
    program = serializers.SlugField(max_length=64, help_text="The program's slug")


class TransactionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PointsTransaction
        fields = [
            "id",
            "membership",
            "kind",
            "points",
            "balance_after",
            "idempotency_key",
            "reason",
            "source_type",
            "source_id",
            "occurred_at",
            "expires_at",
            "created_at",
        ]


class AwardSerializer(StrictFieldsMixin, serializers.Serializer):
    points = serializers.IntegerField(min_value=1, max_value=10_000_000)
    idempotency_key = serializers.CharField(max_length=200)
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class AdjustSerializer(StrictFieldsMixin, serializers.Serializer):
    points = serializers.IntegerField(min_value=-10_000_000, max_value=10_000_000, help_text="Signed; not 0")
    idempotency_key = serializers.CharField(max_length=200)
    reason = serializers.CharField(max_length=255)

    def validate_points(self, value):
        if value == 0:
            raise serializers.ValidationError("An adjustment must change the balance.")
        return value


class MemberRedeemSerializer(StrictFieldsMixin, serializers.Serializer):
    reward = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    idempotency_key = serializers.CharField(max_length=200)


class RewardRedeemSerializer(StrictFieldsMixin, serializers.Serializer):
    customer = serializers.CharField(max_length=191, help_text="The customer's external_id")
    idempotency_key = serializers.CharField(max_length=200)


class RewardSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = Reward
        fields = [
            "id",
            "program",
            "name",
            "description",
            "cost_points",
            "minimum_tier",
            "active",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"cost_points": {"min_value": 1, "max_value": 2**31 - 1}}

    def validate(self, attrs):
        program = attrs.get("program") or getattr(self.instance, "program", None)
        tier = attrs.get("minimum_tier")
        if tier is not None and program is not None and tier.program_id != program.pk:
            raise serializers.ValidationError({"minimum_tier": ["This tier belongs to another program."]})
        return attrs


class RedemptionSerializer(serializers.ModelSerializer):
    transaction = TransactionSerializer(read_only=True)

    class Meta:
        model = Redemption
        fields = ["id", "membership", "reward", "transaction", "created_at"]
