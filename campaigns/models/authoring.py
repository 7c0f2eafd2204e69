"""What a marketer builds: campaigns, saved message templates and the variants of a campaign."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel
from customers.models import Channel as CustomerChannel


class Channel(models.TextChoices):
    EMAIL = CustomerChannel.EMAIL.value, "Email"
    PUSH = CustomerChannel.PUSH.value, "Push"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    PAUSED = "paused", "Paused"
    SENT = "sent", "Sent"
    CANCELLED = "cancelled", "Cancelled"


class ScheduleKind(models.TextChoices):
    NOW = "now", "Send now"
    AT = "at", "At a time"
    LOCAL_TIME = "local_time", "At a time in each customer's timezone"
    RECURRING = "recurring", "Recurring (cron)"
    TRIGGERED = "triggered", "Triggered"


class TriggerKind(models.TextChoices):
    EVENT = "event", "On an event"
    SEGMENT_ENTRY = "segment_entry", "On entering a segment"
    POINTS_EXPIRING = "points_expiring", "On points about to expire"


class CapOverflow(models.TextChoices):
    DEFER = "defer", "Defer until the cap allows"
    DROP = "drop", "Skip the customer (state capped)"


class Campaign(TimeStampedModel):
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    status = models.CharField(max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    status_reason = models.CharField(
        max_length=255, blank=True, default="", help_text="Why the campaign is in its state (e.g. auto-pause)"
    )

    # Audience
    include_segments = models.ManyToManyField(
        "segments.Segment", blank=True, related_name="included_in_campaigns"
    )
    exclude_segments = models.ManyToManyField(
        "segments.Segment", blank=True, related_name="excluded_from_campaigns"
    )

    # Schedule
    schedule_kind = models.CharField(max_length=12, choices=ScheduleKind.choices, default=ScheduleKind.NOW)
    send_at = models.DateTimeField(null=True, blank=True, help_text="For 'at a time'")
    local_send_date = models.DateField(null=True, blank=True, help_text="For 'in each customer's timezone'")
    local_send_time = models.TimeField(null=True, blank=True, help_text="For 'in each customer's timezone'")
    cron = models.CharField(
        max_length=100, blank=True, default="", help_text="Recurring: 'minute hour day month weekday'"
    )
    schedule_timezone = models.CharField(
        max_length=64, blank=True, default="", help_text="IANA zone for cron and for customers without one"
    )
    next_run_at = models.DateTimeField(null=True, blank=True, help_text="Next occurrence of a recurring one")
    trigger_kind = models.CharField(max_length=16, choices=TriggerKind.choices, blank=True, default="")
    trigger_event_type = models.CharField(
        max_length=16, blank=True, default="", help_text="Event type that fires it (view, purchase…)"
    )
    trigger_event_name = models.CharField(
        max_length=64, blank=True, default="", help_text="For custom events: the event name"
    )
    trigger_segment = models.ForeignKey(
        "segments.Segment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    trigger_points_days = models.PositiveSmallIntegerField(
        default=7, help_text="Points expiring within this many days fire the trigger"
    )
    trigger_delay_minutes = models.PositiveIntegerField(default=0, help_text="Wait after the trigger")
    trigger_armed_at = models.DateTimeField(
        null=True, blank=True, help_text="Only triggers that happen after this fire"
    )

    # Sender identity and links
    from_name = models.CharField(max_length=100, blank=True, default="")
    from_email = models.EmailField(blank=True, default="", help_text="Empty: DEFAULT_FROM_EMAIL")
    reply_to = models.EmailField(blank=True, default="")
    utm_source = models.CharField(max_length=100, blank=True, default="reachly")
    utm_medium = models.CharField(max_length=100, blank=True, default="")
    utm_campaign = models.CharField(max_length=100, blank=True, default="")
    conversion_window_hours = models.PositiveIntegerField(default=5 * 24)

    # Pressure on the customer and the provider
    cap_messages = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="At most this many messages on the channel per period (all campaigns)",
    )
    cap_period_hours = models.PositiveIntegerField(default=24)
    cap_overflow = models.CharField(max_length=8, choices=CapOverflow.choices, default=CapOverflow.DEFER)
    quiet_hours_start = models.TimeField(null=True, blank=True, help_text="Customer's local time")
    quiet_hours_end = models.TimeField(null=True, blank=True, help_text="Customer's local time")
    send_rate = models.PositiveIntegerField(
        null=True, blank=True, help_text="Messages per second; empty = the provider's rate from settings"
    )

    # Experiment design
    control_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("50"))],
        help_text="Share of the audience that receives nothing (per-campaign control group)",
    )
    assignment_salt = models.CharField(max_length=64, default="", blank=True)

    # Recommendations in the message
    recommendation_count = models.PositiveSmallIntegerField(default=4)
    recommendation_categories = models.JSONField(default=list, blank=True)
    recommendation_brands = models.JSONField(default=list, blank=True)
    recommendation_in_stock_only = models.BooleanField(default=True)
    recommendation_exclude_skus = models.JSONField(default=list, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    launched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last time a send worker took a chunk (the dispatcher reads it)"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "schedule_kind"], name="campaign_status_kind_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(control_percent__gte=0) & Q(control_percent__lte=50), name="campaign_control_pct"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if not self.assignment_salt:
            self.assignment_salt = uuid.uuid4().hex
        super().save(*args, **kwargs)

    @property
    def is_ongoing(self) -> bool:
        """Recurring and triggered campaigns stay armed after launch; one-offs finish."""
        return self.schedule_kind in (ScheduleKind.RECURRING, ScheduleKind.TRIGGERED)


class MessageTemplate(TimeStampedModel):
    """A reusable message a marketer starts variants from; the variant keeps its own copy."""

    name = models.CharField(max_length=200, unique=True)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    subject = models.TextField(blank=True, default="")
    preheader = models.TextField(blank=True, default="")
    html = models.TextField(blank=True, default="")
    text = models.TextField(blank=True, default="", help_text="Empty: generated from the HTML")
    push_title = models.TextField(blank=True, default="")
    push_body = models.TextField(blank=True, default="")
    push_url = models.TextField(blank=True, default="")
    push_icon = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return self.name


MESSAGE_PARTS = ("subject", "preheader", "html", "text", "push_title", "push_body", "push_url", "push_icon")


class Variant(TimeStampedModel):
    """One version of the message; 1 to 8 per campaign, split by weight."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=64, default="A")
    weight = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    based_on = models.ForeignKey(
        MessageTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="variants"
    )
    subject = models.TextField(blank=True, default="")
    preheader = models.TextField(blank=True, default="")
    html = models.TextField(blank=True, default="")
    text = models.TextField(blank=True, default="", help_text="Empty: generated from the HTML")
    push_title = models.TextField(blank=True, default="")
    push_body = models.TextField(blank=True, default="")
    push_url = models.TextField(blank=True, default="")
    push_icon = models.TextField(blank=True, default="")

    # What an experiment may vary besides the message: the channel, the send time, the recommender.
    channel = models.CharField(
        max_length=8,
        choices=Channel.choices,
        blank=True,
        default="",
        help_text="Empty: the campaign's channel",
    )
    send_local_time = models.TimeField(
        null=True,
        blank=True,
        help_text="Send at this time in each customer's timezone (the first such moment at or after the "
        "campaign's time; on the campaign's date for 'in each customer's timezone')",
    )
    send_delay_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Send this many minutes after the campaign's time"
    )
    recommender = models.ForeignKey(
        "recommender.RecommenderConfig",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Where this variant's recommendations come from; empty: the default recommender",
    )

    class Meta:
        ordering = ["campaign", "name"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "name"], name="variant_name_unique"),
            models.CheckConstraint(condition=Q(weight__gte=1), name="variant_weight_positive"),
            models.CheckConstraint(
                condition=Q(send_local_time__isnull=True) | Q(send_delay_minutes__isnull=True),
                name="variant_one_send_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} / {self.name}"

    def parts(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in MESSAGE_PARTS}

    def channel_on(self, campaign: Campaign) -> str:
        """The channel this variant's messages go out on (its own, else the campaign's)."""
        return self.channel or campaign.channel

    @property
    def has_own_send_time(self) -> bool:
        return self.send_local_time is not None or self.send_delay_minutes is not None

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.send_local_time is not None and self.send_delay_minutes is not None:
            raise ValidationError(
                {"send_delay_minutes": "Choose a local send time or a delay for this variant, not both."}
            )
