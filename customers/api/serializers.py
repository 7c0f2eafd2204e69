"""Serializers for reading customers and documenting what writes accept.

Writes are validated by the row schemas in customers.schemas (the same rules as the bulk API and
the CSV import); the write serializers here describe those rules in the OpenAPI schema.
"""

from __future__ import annotations

from rest_framework import serializers

from core import rows
from core.api import StrictFieldsMixin
from core.openapi import FlexibleDecimalField
from customers.models import (
    Channel,
    ConsentAction,
    ConsentRecord,
    Customer,
    Event,
    EventType,
    Order,
    OrderLine,
    PushSubscription,
)


class ConsentStateSerializer(serializers.Serializer):
    channel = serializers.CharField()
    status = serializers.CharField()
    source = serializers.CharField()
    changed_at = serializers.DateTimeField()


class CustomerSerializer(serializers.ModelSerializer):
    consent = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = [
            "external_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "locale",
            "timezone",
            "country",
            "attributes",
            "consent",
            "created_at",
            "updated_at",
        ]

    def get_consent(self, customer) -> list[dict]:
        return [
            {"channel": s.channel, "status": s.status, "source": s.source, "changed_at": s.changed_at}
            for s in sorted(customer.consents.all(), key=lambda s: s.channel)
        ]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["consent"] = ConsentStateSerializer(data["consent"], many=True).data
        return data


class ConsentDecisionRowSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Channel.choices)
    action = serializers.ChoiceField(choices=[ConsentAction.GRANTED, ConsentAction.WITHDRAWN])
    source = serializers.CharField(max_length=64, required=False)
    occurred_at = serializers.DateTimeField(required=False)
    ip = serializers.IPAddressField(required=False, allow_null=True)


class CustomerUpdateSerializer(serializers.Serializer):
    """Profile fields; those left out keep their stored value."""

    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    phone = serializers.CharField(required=False, allow_blank=True, max_length=32)
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    locale = serializers.CharField(required=False, allow_blank=True, max_length=16, help_text="e.g. en-GB")
    timezone = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="IANA name, e.g. Europe/London"
    )
    country = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="ISO 3166 code (GB) or country name"
    )
    attributes = serializers.DictField(required=False, help_text="Free JSON object, at most 5 levels deep")
    consent = ConsentDecisionRowSerializer(many=True, required=False)


class CustomerRowSerializer(CustomerUpdateSerializer):
    external_id = serializers.CharField(max_length=191, help_text="The CRM's id; no '/'")


class CustomerSearchSerializer(StrictFieldsMixin, serializers.Serializer):
    """The body of `POST /customers/search/`: personal identifiers travel in the body, never in a URL."""

    email = serializers.CharField(
        max_length=254,
        trim_whitespace=True,
        help_text="The customer's email address; matched case-insensitively.",
    )

    def validate_email(self, value: str) -> str:
        try:
            address = rows.email(value)
        except rows.FieldInvalid as exc:
            raise serializers.ValidationError(str(exc)) from None
        if not address:
            raise serializers.ValidationError("May not be empty.")
        return address


class CustomerPageSerializer(serializers.Serializer):
    """One page of customers (cursor pagination: `next` and `previous` carry only a cursor)."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = CustomerSerializer(many=True)


class ConsentRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConsentRecord
        fields = ["id", "channel", "action", "source", "ip", "occurred_at", "recorded_at", "note"]


class ConsentDecisionSerializer(StrictFieldsMixin, serializers.Serializer):
    channel = serializers.ChoiceField(choices=Channel.choices)
    action = serializers.ChoiceField(choices=[ConsentAction.GRANTED, ConsentAction.WITHDRAWN])
    source = serializers.CharField(max_length=64)
    occurred_at = serializers.DateTimeField(required=False)
    ip = serializers.IPAddressField(required=False, allow_null=True)
    note = serializers.CharField(max_length=255, required=False, allow_blank=True)


class DoubleOptInRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    source = serializers.CharField(max_length=64)
    ip = serializers.IPAddressField(required=False, allow_null=True)
    send_email = serializers.BooleanField(default=True)


class DoubleOptInResponseSerializer(serializers.Serializer):
    status = serializers.CharField()
    token = serializers.CharField()
    confirm_url = serializers.CharField()


class ConfirmSerializer(StrictFieldsMixin, serializers.Serializer):
    token = serializers.CharField(max_length=1000)


class PushSubscriptionSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = PushSubscription
        fields = ["id", "kind", "endpoint", "p256dh", "auth", "token", "active", "created_at"]
        read_only_fields = ["id", "active", "created_at"]
        extra_kwargs = {
            "p256dh": {"write_only": True},
            "auth": {"write_only": True},
            "token": {"write_only": True},
        }


class OrderLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderLine
        fields = ["line_no", "sku", "kind", "quantity", "unit_price"]


class OrderSerializer(serializers.ModelSerializer):
    customer = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "external_id",
            "customer",
            "status",
            "placed_at",
            "currency",
            "total",
            "attributes",
            "lines",
            "created_at",
        ]


class OrderLineRowSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(help_text="Negative for returns and cancellations; never 0")
    unit_price = FlexibleDecimalField(max_digits=12, decimal_places=2, min_value=0)
    kind = serializers.ChoiceField(choices=OrderLine.Kind.choices, required=False)


class OrderRowSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=191)
    customer = serializers.CharField(max_length=191, help_text="The customer's external_id")
    placed_at = serializers.DateTimeField()
    currency = serializers.CharField(max_length=3, required=False, help_text="ISO 4217, default GBP")
    status = serializers.ChoiceField(choices=Order.Status.choices, required=False)
    attributes = serializers.DictField(required=False)
    lines = OrderLineRowSerializer(many=True)


class EventSerializer(serializers.ModelSerializer):
    customer = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    product = serializers.SlugRelatedField(slug_field="sku", read_only=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "idempotency_key",
            "customer",
            "type",
            "name",
            "product",
            "quantity",
            "value",
            "properties",
            "occurred_at",
            "received_at",
        ]


class EventRowSerializer(serializers.Serializer):
    idempotency_key = serializers.CharField(max_length=200)
    customer = serializers.CharField(max_length=191, help_text="The customer's external_id")
    type = serializers.ChoiceField(choices=EventType.choices)
    name = serializers.CharField(max_length=64, required=False, help_text="Required for custom events")
    product = serializers.CharField(max_length=64, required=False, allow_null=True, help_text="A product sku")
    quantity = serializers.IntegerField(required=False)
    value = FlexibleDecimalField(max_digits=12, decimal_places=2, required=False, allow_null=True)
    properties = serializers.DictField(required=False)
    occurred_at = serializers.DateTimeField()
