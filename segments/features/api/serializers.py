from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers


class RecomputeRequestSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(
        required=False,
        help_text="End of the order history to use (default: now). Orders after it are ignored.",
    )

    def validate_as_of(self, value):
        if value > timezone.now():
            raise serializers.ValidationError("Must not be in the future.")
        return value


class RecomputeResponseSerializer(serializers.Serializer):
    queued = serializers.BooleanField()
    task = serializers.CharField()
    as_of = serializers.DateTimeField(allow_null=True)
    steps = serializers.ListField(child=serializers.CharField())


class RFMScoresSerializer(serializers.Serializer):
    recency = serializers.IntegerField(allow_null=True)
    frequency = serializers.IntegerField(allow_null=True)
    monetary = serializers.IntegerField(allow_null=True)
    group = serializers.CharField(allow_blank=True)
    description = serializers.CharField(allow_blank=True)


class CustomerFeaturesSerializer(serializers.Serializer):
    customer = serializers.CharField(help_text="The customer's external_id")
    recency_days = serializers.IntegerField(allow_null=True, help_text="Days since the last purchase")
    frequency = serializers.IntegerField(help_text="Number of purchases")
    monetary = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="Net revenue")
    average_order_value = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    first_order_at = serializers.DateTimeField(allow_null=True)
    last_order_at = serializers.DateTimeField(allow_null=True)
    rfm = RFMScoresSerializer()
    cluster = serializers.IntegerField(allow_null=True)
    cluster_description = serializers.CharField(allow_blank=True)
    p_alive = serializers.FloatField(allow_null=True)
    churn_probability = serializers.FloatField(allow_null=True)
    expected_purchases_90d = serializers.FloatField(allow_null=True)
    predicted_clv = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    computed_at = serializers.DateTimeField(allow_null=True)
