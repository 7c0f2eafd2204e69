"""Runs and the send ledger: one row per campaign, variant, customer and channel, with its state."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from campaigns.models.authoring import Campaign, Channel, Variant


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
