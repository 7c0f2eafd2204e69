"""What flows back from each send: tracked links, opens and clicks, conversions, provider webhooks,
test sends."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from campaigns.models.authoring import Campaign, Variant
from campaigns.models.ledger import Send


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
