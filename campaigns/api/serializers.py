"""Campaigns over the API: a campaign with its variants in one document."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns import schedule
from campaigns.models import MESSAGE_PARTS, Campaign, CampaignRun, Channel, Send, TestSend, Variant
from campaigns.services.launch import MAX_VARIANTS
from recommender.models import RecommenderConfig
from segments.models import Segment


@extend_schema_field({"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2})?$", "example": "21:00:00"})
class WallClockField(serializers.TimeField):
    """A local wall-clock time ("21:00"), with no offset: OpenAPI's `format: time` demands one."""


class VariantSerializer(serializers.ModelSerializer):
    channel = serializers.ChoiceField(
        choices=[("", "The campaign's channel"), *Channel.choices],
        required=False,
        allow_blank=True,
        help_text="The channel this variant goes out on; empty: the campaign's (an experiment may compare channels)",
    )
    send_local_time = WallClockField(
        required=False,
        allow_null=True,
        help_text="Send this variant at this time in each customer's timezone (an experiment on send time)",
    )
    recommender = serializers.PrimaryKeyRelatedField(
        queryset=RecommenderConfig.objects.all(),
        required=False,
        allow_null=True,
        help_text="Recommender config whose model fills this variant's recommendations; empty: the default",
    )

    class Meta:
        model = Variant
        fields = [
            "id",
            "name",
            "weight",
            *MESSAGE_PARTS,
            "channel",
            "send_local_time",
            "send_delay_minutes",
            "recommender",
        ]
        read_only_fields = ["id"]
        extra_kwargs = {
            "weight": {"min_value": 1, "max_value": 10_000},
            "send_delay_minutes": {
                "min_value": 0,
                "max_value": 60 * 24 * 30,
                "help_text": "Send this variant this many minutes after the campaign's time",
            },
        }

    def validate(self, attrs):
        local = attrs.get("send_local_time", getattr(self.instance, "send_local_time", None))
        delay = attrs.get("send_delay_minutes", getattr(self.instance, "send_delay_minutes", None))
        if local is not None and delay is not None:
            raise serializers.ValidationError(
                {"send_delay_minutes": ["Choose a local send time or a delay for this variant, not both."]}
            )
        return attrs


def _string_list(value, field: str) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(item, str) and 0 < len(item) <= 200 for item in value
    ):
        raise serializers.ValidationError(f"{field} must be a list of non-empty strings.")
    if len(value) > 100:
        raise serializers.ValidationError(f"{field} takes at most 100 entries.")
    return value


class CampaignSerializer(serializers.ModelSerializer):
    variants = VariantSerializer(many=True, required=False)
    include_segments = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Segment.objects.all(), required=False
    )
    exclude_segments = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Segment.objects.all(), required=False
    )
    trigger_segment = serializers.PrimaryKeyRelatedField(
        queryset=Segment.objects.all(), required=False, allow_null=True
    )
    local_send_time = WallClockField(required=False, allow_null=True)
    quiet_hours_start = WallClockField(required=False, allow_null=True)
    quiet_hours_end = WallClockField(required=False, allow_null=True)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "channel",
            "status",
            "status_reason",
            "include_segments",
            "exclude_segments",
            "schedule_kind",
            "send_at",
            "local_send_date",
            "local_send_time",
            "cron",
            "schedule_timezone",
            "next_run_at",
            "trigger_kind",
            "trigger_event_type",
            "trigger_event_name",
            "trigger_segment",
            "trigger_points_days",
            "trigger_delay_minutes",
            "from_name",
            "from_email",
            "reply_to",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "conversion_window_hours",
            "cap_messages",
            "cap_period_hours",
            "cap_overflow",
            "quiet_hours_start",
            "quiet_hours_end",
            "send_rate",
            "control_percent",
            "recommendation_count",
            "recommendation_categories",
            "recommendation_brands",
            "recommendation_in_stock_only",
            "recommendation_exclude_skus",
            "variants",
            "launched_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "status",
            "status_reason",
            "next_run_at",
            "launched_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {
            "conversion_window_hours": {"min_value": 1, "max_value": 24 * 90},
            "cap_messages": {"min_value": 1, "max_value": 1000},
            "cap_period_hours": {"min_value": 1, "max_value": 24 * 31},
            "send_rate": {"min_value": 1, "max_value": 100_000},
            "recommendation_count": {"min_value": 0, "max_value": 24},
            "trigger_points_days": {"min_value": 1, "max_value": 365},
            "trigger_delay_minutes": {"min_value": 0, "max_value": 60 * 24 * 90},
        }

    def validate_schedule_timezone(self, value: str) -> str:
        if value and schedule.zone(value, default="").key != value:
            raise serializers.ValidationError("Use an IANA zone name such as Europe/London.")
        return value

    def validate_cron(self, value: str) -> str:
        if value:
            try:
                schedule.parse_cron(value)
            except schedule.CronError as exc:
                raise serializers.ValidationError(str(exc)) from None
        return value

    def validate_recommendation_categories(self, value):
        return _string_list(value, "recommendation_categories")

    def validate_recommendation_brands(self, value):
        return _string_list(value, "recommendation_brands")

    def validate_recommendation_exclude_skus(self, value):
        return _string_list(value, "recommendation_exclude_skus")

    def validate_variants(self, value):
        if len(value) > MAX_VARIANTS:
            raise serializers.ValidationError(f"At most {MAX_VARIANTS} variants.")
        names = [v.get("name", "A") for v in value]
        if len(set(names)) != len(names):
            raise serializers.ValidationError("Variant names must be unique within a campaign.")
        return value

    def validate(self, attrs):
        variants = attrs.get("variants")
        if variants is not None and self.instance is not None:
            # An experiment measured on opens cannot take a push variant (push opens are not tracked).
            from experiments.models import Experiment, Metric, open_rate_problem

            experiment = Experiment.objects.filter(campaign=self.instance).first()
            if experiment is not None and experiment.metric == Metric.OPEN_RATE:
                channel = attrs.get("channel", self.instance.channel)
                stand_in = Campaign(channel=channel)
                problem = open_rate_problem(stand_in, [Variant(**v) for v in variants])
                if problem:
                    raise serializers.ValidationError({"variants": [problem]})
        return attrs

    @transaction.atomic
    def create(self, validated_data):
        variants = validated_data.pop("variants", None) or [{"name": "A"}]
        include = validated_data.pop("include_segments", [])
        exclude = validated_data.pop("exclude_segments", [])
        campaign = Campaign.objects.create(**validated_data)
        campaign.include_segments.set(include)
        campaign.exclude_segments.set(exclude)
        Variant.objects.bulk_create([Variant(campaign=campaign, **v) for v in variants])
        return campaign

    @transaction.atomic
    def update(self, instance, validated_data):
        variants = validated_data.pop("variants", None)
        include = validated_data.pop("include_segments", None)
        exclude = validated_data.pop("exclude_segments", None)
        for field, value in validated_data.items():
            setattr(instance, field, value)
        instance.save()
        if include is not None:
            instance.include_segments.set(include)
        if exclude is not None:
            instance.exclude_segments.set(exclude)
        if variants is not None:
            existing = {v.name: v for v in instance.variants.all()}
            keep = set()
            for data in variants:
                name = data.get("name", "A")
                keep.add(name)
                if name in existing:
                    for field, value in data.items():
                        setattr(existing[name], field, value)
                    existing[name].save()
                else:
                    Variant.objects.create(campaign=instance, **data)
            gone = [v.pk for name, v in existing.items() if name not in keep]
            if gone:
                if Send.objects.filter(variant_id__in=gone).exists():
                    raise serializers.ValidationError(
                        {"variants": ["A variant that already has sends cannot be removed."]}
                    )
                Variant.objects.filter(pk__in=gone).delete()
        return instance


class LaunchResultSerializer(CampaignSerializer):
    pass


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)


class TestSendRequestSerializer(serializers.Serializer):
    addresses = serializers.ListField(
        child=serializers.EmailField(),
        required=False,
        max_length=10,
        help_text="Email variant: where the test goes (1 to 10 addresses)",
    )
    test_customers = serializers.ListField(
        child=serializers.CharField(max_length=191),
        required=False,
        max_length=10,
        help_text="Push variant: external ids of customers (e.g. your own record) with push consent and an "
        "active push subscription; each of their subscriptions gets the test",
    )
    variant = serializers.CharField(
        required=False, max_length=64, help_text="Variant name; the first by default"
    )
    customer = serializers.CharField(
        required=False, max_length=191, help_text="External id of the customer whose data fills the template"
    )


class TestSendSerializer(serializers.ModelSerializer):
    class Meta:
        model = TestSend
        fields = ["id", "campaign", "variant", "addresses", "state", "result", "created_at"]
        extra_kwargs = {
            "addresses": {"help_text": "Email addresses, or push:<subscription id> for a push test"}
        }


class SendSerializer(serializers.ModelSerializer):
    customer = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    variant = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Send
        fields = [
            "id",
            "run",
            "variant",
            "customer",
            "channel",
            "arm",
            "state",
            "reason",
            "not_before",
            "attempts",
            "kills",
            "sent_at",
            "updated_at",
        ]


class RunSerializer(serializers.ModelSerializer):
    class Meta:
        model = CampaignRun
        fields = [
            "id",
            "key",
            "state",
            "scheduled_for",
            "audience_size",
            "created_at",
            "ledger_written_at",
            "finished_at",
        ]


class TemplateSourceField(serializers.CharField):
    """Template source text: a number or a list is refused, not turned into text."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("max_length", 200_000)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class PreviewRequestSerializer(serializers.Serializer):
    subject = TemplateSourceField()
    preheader = TemplateSourceField()
    html = TemplateSourceField()
    text = TemplateSourceField()
    push_title = TemplateSourceField()
    push_body = TemplateSourceField()
    push_url = TemplateSourceField()
    push_icon = TemplateSourceField()
    customer = TemplateSourceField(max_length=191, help_text="External id of the customer")
    campaign = serializers.IntegerField(required=False, min_value=1, max_value=2**62)


class PreviewErrorSerializer(serializers.Serializer):
    field = serializers.CharField()
    line = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class PreviewErrorsSerializer(serializers.Serializer):
    errors = PreviewErrorSerializer(many=True)


class PreviewResponseSerializer(serializers.Serializer):
    subject = serializers.CharField(required=False)
    preheader = serializers.CharField(required=False)
    html = serializers.CharField(required=False)
    text = serializers.CharField(required=False)
    push_title = serializers.CharField(required=False)
    push_body = serializers.CharField(required=False)
    push_url = serializers.CharField(required=False)
    push_icon = serializers.CharField(required=False)
