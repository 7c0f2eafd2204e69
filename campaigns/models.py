"""Campaigns, their message variants, runs, the send ledger and what flows back from each send.

The send ledger (`Send`) is the system of record for delivery: every decision about a customer
(queued, held out, suppressed, capped, deferred, sent, failed) is a row state with a reason, and
workers coordinate only through it (leases, attempt and kill counters), never through Redis.
"""

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


class RunState(models.TextChoices):
    PENDING = "pending", "Waiting for its time"
    WRITING = "writing", "Writing the ledger"
    READY = "ready", "Sending"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class CampaignRun(models.Model):
    """One delivery of a campaign: the one-off send, one occurrence, or one trigger.

    `key` makes each run happen once: "once", "occurrence:<iso time>", "event:<id>",
    "segment_entry:<membership id>", "points_expiring:<membership id>:<date>". A re-delivered
    trigger or a second beat creates nothing new.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="runs")
    key = models.CharField(max_length=120)
    state = models.CharField(max_length=10, choices=RunState.choices, default=RunState.PENDING)
    scheduled_for = models.DateTimeField(help_text="When its messages may go out")
    trigger_customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    audience_size = models.PositiveIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True, help_text="Ledger writer's lease")
    created_at = models.DateTimeField(auto_now_add=True)
    ledger_written_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["campaign", "key"], name="run_key_unique")]
        indexes = [
            models.Index(
                fields=["state", "scheduled_for"],
                name="run_open_idx",
                condition=Q(state__in=["pending", "writing"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.key}"


class SendState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed"
    CAPPED = "capped", "Frequency capped"
    DEFERRED = "deferred", "Deferred"
    HELD_OUT = "held_out", "Held out"


#: States a worker may claim (a deferred row once its not_before has passed).
CLAIMABLE_STATES = (SendState.QUEUED, SendState.DEFERRED)
#: States that will never change again.
FINAL_STATES = (
    SendState.SENT,
    SendState.FAILED,
    SendState.SUPPRESSED,
    SendState.CAPPED,
    SendState.HELD_OUT,
)


class Arm(models.TextChoices):
    VARIANT = "variant", "Variant"
    CONTROL = "control", "Control group"
    HOLDOUT = "holdout", "Global holdout"
    # Test-then-send: outside the test sample; waits for the winner, then gets its content.
    # Not randomised between variants, so experiments leave these rows out of the comparison.
    ROLLOUT = "rollout", "Winner roll-out"


class Send(models.Model):
    """The ledger: one row per (run, variant, customer, channel), whatever happened to it (see Meta).

    `not_before` is set on every claimable row (its due time), so the claim query walks one
    partial index ordered by due time. Leases (`lease_owner`, `lease_expires_at`) let a
    reconciler give a dead worker's rows back; `kills` counts how often a chunk holding the row
    died with its worker, so a poison message stops crashing workers after three tries.
    """

    run = models.ForeignKey(CampaignRun, on_delete=models.CASCADE, related_name="sends")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sends")
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.PROTECT, related_name="sends"
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="campaign_sends"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    arm = models.CharField(max_length=8, choices=Arm.choices, default=Arm.VARIANT)
    state = models.CharField(max_length=10, choices=SendState.choices, default=SendState.QUEUED)
    reason = models.CharField(max_length=255, blank=True, default="")
    not_before = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    kills = models.PositiveSmallIntegerField(default=0)
    message_id = models.CharField(
        max_length=255, blank=True, default="", help_text="Message-ID header, derived from this row"
    )
    provider_message_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # The settled key is (run, variant, customer, channel). A customer has exactly one arm
            # per run, so the constraint is on (run, customer, channel): it implies that key, is
            # stricter (no customer in two variants of a run, even if weights changed between a
            # crashed ledger writer and its retry) and has no NULL column (held-out rows have no
            # variant), so it holds on SQLite as well.
            models.UniqueConstraint(fields=["run", "customer", "channel"], name="send_ledger_unique"),
        ]
        indexes = [
            models.Index(
                fields=["campaign", "not_before", "id"],
                name="send_claimable_idx",
                condition=Q(state__in=["queued", "deferred"]),
            ),
            models.Index(fields=["lease_expires_at"], name="send_leased_idx", condition=Q(state="sending")),
            models.Index(fields=["campaign", "state"], name="send_campaign_state_idx"),
            models.Index(fields=["customer", "channel", "sent_at"], name="send_customer_sent_idx"),
            models.Index(fields=["message_id"], name="send_message_id_idx", condition=~Q(message_id="")),
            models.Index(
                fields=["provider_message_id"],
                name="send_provider_id_idx",
                condition=~Q(provider_message_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"send #{self.pk} ({self.state})"


class TrackedLink(models.Model):
    """A destination URL a message links to, stored server-side; click tokens point here by id.

    Deduplicated per variant: product links repeat across thousands of messages, so a chunk
    upserts a few dozen rows rather than one per message and link.
    """

    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="links")
    url_hash = models.CharField(
        max_length=16, help_text="First 64 bits of SHA-256(url), also in click tokens"
    )
    url = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["variant", "url_hash"], name="tracked_link_unique")]

    def __str__(self) -> str:
        return self.url[:80]


class TrackingKind(models.TextChoices):
    OPEN = "open", "Open"
    CLICK = "click", "Click"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe"
    BOUNCE = "bounce", "Bounce"
    COMPLAINT = "complaint", "Complaint"
    DELIVERED = "delivered", "Delivered (provider)"


class TrackingEvent(models.Model):
    """What a send caused: opens (human or machine), clicks, unsubscribes, bounces, complaints."""

    send = models.ForeignKey(Send, on_delete=models.CASCADE, related_name="tracking_events")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="tracking_events")
    variant = models.ForeignKey(Variant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=TrackingKind.choices)
    machine = models.BooleanField(default=False, help_text="Privacy proxy, scanner or prefetch")
    machine_reason = models.CharField(max_length=64, blank=True, default="")
    link = models.ForeignKey(TrackedLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    detail = models.CharField(max_length=255, blank=True, default="")
    user_agent = models.CharField(max_length=255, blank=True, default="")
    occurred_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["campaign", "kind", "occurred_at"], name="tracking_campaign_kind_idx"),
            models.Index(fields=["customer", "occurred_at"], name="tracking_customer_time_idx"),
            models.Index(fields=["send", "kind"], name="tracking_send_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on send #{self.send_id}"


class Conversion(models.Model):
    """An order credited to the last clicked (else opened) send within the campaign's window."""

    class Touch(models.TextChoices):
        CLICK = "click", "Click"
        OPEN = "open", "Open"

    order = models.OneToOneField("customers.Order", on_delete=models.CASCADE, related_name="conversion")
    send = models.ForeignKey(Send, on_delete=models.CASCADE, related_name="conversions")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="conversions")
    variant = models.ForeignKey(Variant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    touch = models.CharField(max_length=8, choices=Touch.choices)
    touched_at = models.DateTimeField()
    placed_at = models.DateTimeField()
    revenue = models.DecimalField(max_digits=14, decimal_places=2)
    attributed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["campaign", "placed_at"], name="conversion_campaign_time_idx")]

    def __str__(self) -> str:
        return f"order {self.order_id} ← send {self.send_id}"


class ProcessingCursor(models.Model):
    """How far a periodic reader got through an append-only table (events, orders, memberships)."""

    name = models.CharField(max_length=64, unique=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_id}"


class DeliveryWebhookEvent(models.Model):
    """Provider callbacks already processed, so a replayed bounce or complaint changes nothing."""

    provider = models.CharField(max_length=32)
    event_id = models.CharField(max_length=191)
    kind = models.CharField(max_length=16)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="delivery_webhook_event_unique")
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id}"


class TestSend(models.Model):
    """A test message requested from the admin or API: recorded so the worker gets an id, not addresses."""

    __test__ = False  # not a pytest test class

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="test_sends")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    addresses = models.JSONField(default=list)
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    result = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"test send #{self.pk} of {self.campaign_id}"
