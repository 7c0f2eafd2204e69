"""Segments and per-customer analytics.

A dynamic segment is a JSON rule compiled to one SQL query; its membership is materialised with
entered/exited timestamps so campaigns read it with a join and "entered the segment" is a row a
trigger can key on. A static segment's members are an uploaded list.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel


class Segment(TimeStampedModel):
    class Kind(models.TextChoices):
        DYNAMIC = "dynamic", "Dynamic (rules)"
        STATIC = "static", "Static (uploaded list)"

    class RefreshState(models.TextChoices):
        IDLE = "idle", "Up to date"
        QUEUED = "queued", "Refresh queued"
        RUNNING = "running", "Refreshing"
        FAILED = "failed", "Last refresh failed"

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.DYNAMIC)
    rules = models.JSONField(default=dict, blank=True, help_text="Rule tree for dynamic segments")
    active = models.BooleanField(default=True)
    member_count = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_state = models.CharField(max_length=8, choices=RefreshState.choices, default=RefreshState.IDLE)
    refresh_error = models.TextField(blank=True, default="")
    refresh_started_at = models.DateTimeField(null=True, blank=True)
    refresh_queued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the pending refresh was queued (the reconciler re-enqueues lost ones)",
    )
    refresh_seconds = models.FloatField(null=True, blank=True, help_text="Duration of the last full refresh")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SegmentMembership(models.Model):
    """One stay of a customer in a segment: current while `exited_at` is empty.

    Leaving and re-entering opens a new row, so each entry is a distinct event with its own id.
    """

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="segment_memberships"
    )
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "customer"],
                condition=Q(exited_at__isnull=True),
                name="membership_current_unique",
            ),
        ]
        # The unique constraint's partial index serves the "current members" lookups; a second
        # index on the same columns only slowed every refresh's inserts.
        indexes = [
            models.Index(fields=["customer"], name="segmember_customer_idx"),
            models.Index(fields=["segment", "entered_at"], name="segmember_entered_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.segment_id}"


class TouchedCustomer(models.Model):
    """A customer whose events or orders changed since the segments last looked.

    Written in the ingest path (one INSERT ... SELECT per batch) and drained by the
    `segments.refresh_touched` task, which refreshes every dynamic segment for these customers
    only. The table, not the broker, is the queue: a lost task loses nothing.
    """

    customer_id = models.BigIntegerField(primary_key=True)
    touched_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"customer {self.customer_id} touched at {self.touched_at}"


class CustomerFeatures(models.Model):
    """Behavioural features and model outputs per customer, rewritten in bulk by the analytics tasks."""

    customer = models.OneToOneField(
        "customers.Customer", on_delete=models.CASCADE, primary_key=True, related_name="features"
    )
    recency_days = models.IntegerField(null=True, blank=True)
    frequency = models.IntegerField(default=0, help_text="Number of orders")
    monetary = models.DecimalField(max_digits=14, decimal_places=2, default=0, help_text="Net revenue")
    average_order_value = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    first_order_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)
    rfm_r = models.PositiveSmallIntegerField(null=True, blank=True)
    rfm_f = models.PositiveSmallIntegerField(null=True, blank=True)
    rfm_m = models.PositiveSmallIntegerField(null=True, blank=True)
    rfm_group = models.CharField(max_length=32, blank=True, default="", db_index=True)
    cluster = models.SmallIntegerField(null=True, blank=True, db_index=True)
    p_alive = models.FloatField(null=True, blank=True)
    churn_probability = models.FloatField(null=True, blank=True)
    expected_purchases_90d = models.FloatField(null=True, blank=True)
    predicted_clv = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "customer features"
        indexes = [models.Index(fields=["churn_probability"], name="features_churn_idx")]

    def __str__(self) -> str:
        return f"features of {self.customer_id}"
