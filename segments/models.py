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
    # Counted up (and committed) when a refresh starts, under the segment's lock; back to 0 when it
    # commits or fails normally. A start without an end is a refresh whose worker died (the
    # out-of-memory killer, the hard time limit); after SEGMENTS_REFRESH_MAX_INTERRUPTIONS of them
    # in a row the refresh is failed with the reason instead of run again (services.refresh_segment).
    refresh_interruptions = models.PositiveSmallIntegerField(
        default=0, help_text="Refreshes in a row that started and never finished (worker killed)"
    )

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
    # No stored recency: it changes for everyone every day, and storing it made each nightly run
    # rewrite every row. `segments.features.recency` derives it from last_order_at.
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


# --- per-customer rollups (segments/rollups.py keeps them) ----------------------------------------

ROLLUP_EVENT_TYPES = ("view", "add_to_cart", "purchase", "search", "custom")
ROLLUP_WINDOW_EVENT_TYPES = ("view", "add_to_cart", "purchase", "search")
ROLLUP_WINDOWS = (7, 14, 30, 90, 365)
# Narrow per-customer facts copied into the rollup row, so a rule's consent and model-output
# conditions are answered by the same scan as its order and event conditions.
ROLLUP_CONSENT_CHANNELS = ("email", "push", "sms")
ROLLUP_FEATURE_COLUMNS = ("rfm_group", "cluster", "churn_probability", "p_alive", "predicted_clv")


class RollupState(models.Model):
    """The one row saying as of when the windowed rollup columns were computed (`as_of`).

    Windowed columns count the rows since as_of - N days; the compiler corrects them to any `now`
    near `as_of` with one small slice of the raw rows, so a rule's answer does not depend on when
    the rollups were built.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    as_of = models.DateTimeField()
    built_at = models.DateTimeField()
    build_seconds = models.FloatField(default=0)
    customers = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"rollups as of {self.as_of}"


class CustomerRollup(models.Model):
    """Per-customer order and event aggregates the rule compiler reads instead of the raw rows.

    NULL means zero (or no time): a customer with a few events a year stores mostly NULLs, which
    PostgreSQL keeps in a bitmap, so the table stays narrow. Every customer has a row after a
    rebuild; a customer without one (created since) has no orders, events, consent or features
    (unless touched since: the compiler reads touched customers raw).
    Orders count every status but `cancelled`, as the rules do by default; `purchases`,
    `net_spend` and first/last purchase are the purchase history the RFM scores use
    (see `segments.rollups.purchase_sql`).
    """

    customer = models.OneToOneField(
        "customers.Customer",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="rollup",
        db_constraint=False,  # rebuilt in bulk; the customer's deletion still removes the row
    )
    order_count = models.IntegerField(null=True)
    order_revenue = models.DecimalField(max_digits=16, decimal_places=2, null=True)
    order_first_at = models.DateTimeField(null=True)
    order_last_at = models.DateTimeField(null=True)
    # Purchases (not the `purchase` events, which have columns of their own).
    purchases = models.IntegerField(null=True)
    net_spend = models.DecimalField(max_digits=16, decimal_places=2, null=True)
    first_purchase_at = models.DateTimeField(null=True)
    last_purchase_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"rollup of {self.customer_id}"


def rollup_column(metric: str, days: int | None = None) -> str:
    """Column of a metric (`order_count`, `order_revenue`, `<event type>_count`, ...), windowed or not."""
    return metric if days is None else f"{metric}_{days}d"


for _type in ROLLUP_EVENT_TYPES:
    CustomerRollup.add_to_class(f"{_type}_count", models.IntegerField(null=True))
    CustomerRollup.add_to_class(f"{_type}_first_at", models.DateTimeField(null=True))
    CustomerRollup.add_to_class(f"{_type}_last_at", models.DateTimeField(null=True))
for _days in ROLLUP_WINDOWS:
    for _type in ROLLUP_WINDOW_EVENT_TYPES:
        CustomerRollup.add_to_class(rollup_column(f"{_type}_count", _days), models.IntegerField(null=True))
    CustomerRollup.add_to_class(rollup_column("order_count", _days), models.IntegerField(null=True))
    CustomerRollup.add_to_class(
        rollup_column("order_revenue", _days), models.DecimalField(max_digits=16, decimal_places=2, null=True)
    )
for _channel in ROLLUP_CONSENT_CHANNELS:
    # The current status of the channel's consent (NULL: never asked, the rules' 'none').
    CustomerRollup.add_to_class(f"consent_{_channel}", models.CharField(max_length=10, null=True))
# Copies of the features row's columns, of the same types (NULL also when there is no features row).
CustomerRollup.add_to_class("rfm_group", models.CharField(max_length=32, null=True))
CustomerRollup.add_to_class("cluster", models.SmallIntegerField(null=True))
CustomerRollup.add_to_class("churn_probability", models.FloatField(null=True))
CustomerRollup.add_to_class("p_alive", models.FloatField(null=True))
CustomerRollup.add_to_class("predicted_clv", models.DecimalField(max_digits=14, decimal_places=2, null=True))
