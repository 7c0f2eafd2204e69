from __future__ import annotations

from rest_framework import serializers

from core.api import StrictFieldsMixin
from webhooks.models import TOPICS, WebhookDelivery, WebhookEndpoint


class EndpointSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    topics = serializers.ListField(
        child=serializers.ChoiceField(choices=TOPICS),
        required=False,
        max_length=len(TOPICS),
        help_text="Empty: all topics",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "name", "url", "topics", "active", "created_at"]
        read_only_fields = ["id", "created_at"]


class EndpointCreatedSerializer(EndpointSerializer):
    """The signing secret is shown once, when the endpoint is created."""

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]
        read_only_fields = [*EndpointSerializer.Meta.read_only_fields, "secret"]


class DeliverySerializer(serializers.ModelSerializer):
    topic = serializers.CharField(source="message.topic", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint",
            "message",
            "topic",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
        ]
