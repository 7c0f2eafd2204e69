"""Outbound webhooks through a transactional outbox.

A change and its `OutboxMessage` are written in one transaction, so a webhook is sent for every
committed change and for none that rolled back. Deliveries are retried with backoff by a
dispatcher that beat runs every half minute (no long countdowns in the broker).
"""

from __future__ import annotations

import secrets

from django.db import models

TOPICS = (
    ("customer.created", "Customer created"),
    ("customer.updated", "Customer updated"),
    ("customer.unsubscribed", "Customer unsubscribed"),
    ("customer.erased", "Customer erased"),
    ("points.changed", "Points changed"),
    ("segment.entered", "Customer entered a segment"),
    ("segment.exited", "Customer left a segment"),
    ("campaign.status_changed", "Campaign status changed"),
)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=1000)
    secret = models.CharField(max_length=100, default=new_secret, help_text="HMAC-SHA256 signing secret")
    topics = models.JSONField(default=list, help_text="Topics to receive; empty means all")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    def wants(self, topic: str) -> bool:
        return not self.topics or topic in self.topics


class OutboxMessage(models.Model):
    """One change to announce. Written in bulk (a 10k-row upsert writes 10k of these), so it carries
    only the partial index the fan-out reads: every extra index here slows every bulk write."""

    topic = models.CharField(max_length=64, choices=TOPICS)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    fanned_out_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"],
                name="outbox_pending_idx",
                condition=models.Q(fanned_out_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.topic} #{self.pk}"


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    message = models.ForeignKey(OutboxMessage, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "message"], name="delivery_unique")]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="delivery_due_idx", condition=models.Q(status="pending")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} -> {self.endpoint_id} ({self.status})"
