"""Segments over the API."""

from __future__ import annotations

from rest_framework import serializers

from core.api import StrictFieldsMixin
from segments.models import Segment, SegmentMembership
from segments.rules.validation import check_rule
from segments.selectors import PREVIEW_SAMPLE
from segments.static_upload import MATCH_ON, MAX_UPLOAD, UPLOAD_MODES


def rule_errors(rules, *, segment_id: int | None = None) -> list[str]:
    return [str(e) for e in check_rule(rules, segment_id=segment_id).errors]


class SegmentSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    rules = serializers.JSONField(
        required=False,
        help_text='Rule tree for dynamic segments, e.g. {"all": [{"field": "customer.country", "op": "eq", '
        '"value": "GB"}]} (docs/segment-rules.md)',
    )

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "rules",
            "active",
            "member_count",
            "refreshed_at",
            "refresh_state",
            "refresh_error",
            "refresh_seconds",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "member_count",
            "refreshed_at",
            "refresh_state",
            "refresh_error",
            "refresh_seconds",
            "created_at",
            "updated_at",
        ]

    def validate(self, attrs):
        kind = attrs.get("kind", getattr(self.instance, "kind", Segment.Kind.DYNAMIC))
        if self.instance is not None and "kind" in attrs and attrs["kind"] != self.instance.kind:
            raise serializers.ValidationError({"kind": ["The kind of a segment cannot change."]})
        if kind == Segment.Kind.DYNAMIC:
            rules = attrs.get("rules", getattr(self.instance, "rules", None))
            if self.instance is None and "rules" not in attrs:
                raise serializers.ValidationError({"rules": ["A dynamic segment needs rules."]})
            errors = rule_errors(rules, segment_id=getattr(self.instance, "pk", None))
            if errors:
                raise serializers.ValidationError({"rules": errors})
        elif attrs.get("rules"):
            raise serializers.ValidationError(
                {"rules": ["A static segment has no rules; upload its members."]}
            )
        return attrs


class PreviewRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    rules = serializers.JSONField()
    sample_size = serializers.IntegerField(min_value=0, max_value=100, default=PREVIEW_SAMPLE)

    def validate_rules(self, value):
        errors = rule_errors(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value


class SampleCustomerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    email = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    country = serializers.CharField()


class PreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    sample = SampleCustomerSerializer(many=True)
    seconds = serializers.FloatField()


class MemberSerializer(serializers.ModelSerializer):
    customer_id = serializers.IntegerField()
    external_id = serializers.CharField(source="customer.external_id")
    email = serializers.CharField(source="customer.email")
    first_name = serializers.CharField(source="customer.first_name")
    last_name = serializers.CharField(source="customer.last_name")

    class Meta:
        model = SegmentMembership
        fields = ["id", "customer_id", "external_id", "email", "first_name", "last_name", "entered_at"]


class UploadRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    identifiers = serializers.ListField(
        child=serializers.CharField(max_length=254, allow_blank=True), max_length=MAX_UPLOAD
    )
    match_on = serializers.ChoiceField(choices=MATCH_ON, default="external_id")
    mode = serializers.ChoiceField(choices=UPLOAD_MODES, default="replace")


class UploadReportSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    matched = serializers.IntegerField()
    unmatched_count = serializers.IntegerField()
    unmatched = serializers.ListField(child=serializers.CharField(), help_text="The first 100 unmatched")
    entered = serializers.IntegerField()
    exited = serializers.IntegerField()
    member_count = serializers.IntegerField()


class RefreshSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    refresh_state = serializers.CharField()
