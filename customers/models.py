"""Customers and what they do: profiles, consent, push subscriptions, orders, events.

PostgreSQL is the system of record. Ledgers (consent) are append-only; the current state is
derived from them and cached in a row per customer and channel so segments and sends read it
with a join, not a scan of history.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from core.models import AppendOnlyModel, TimeStampedModel


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    PUSH = "push", "Push"
    SMS = "sms", "SMS"


class CustomerQuerySet(models.QuerySet):
    def active(self):
        return self.filter(deleted_at__isnull=True, erased_at__isnull=True)


class ActiveCustomerManager(models.Manager.from_queryset(CustomerQuerySet)):
    """The default manager hides soft-deleted and erased customers from every list and API."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True, erased_at__isnull=True)


class Customer(TimeStampedModel):
    external_id = models.CharField(max_length=191, unique=True, help_text="The CRM's id for this customer")
    email = models.EmailField(max_length=254, blank=True, default="")
    phone = models.CharField(max_length=32, blank=True, default="")
    first_name = models.CharField(max_length=100, blank=True, default="")
    last_name = models.CharField(max_length=100, blank=True, default="")
    locale = models.CharField(max_length=16, blank=True, default="")
    timezone = models.CharField(
        max_length=64, blank=True, default="", help_text="IANA name, e.g. Europe/London"
    )
    country = models.CharField(max_length=64, blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True, help_text="GDPR erasure: personal data removed")

    objects = ActiveCustomerManager()
    all_objects = CustomerQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(Lower("email"), name="customer_email_lower_idx"),
            models.Index(fields=["country"], name="customer_country_idx"),
            models.Index(fields=["updated_at"], name="customer_updated_idx"),
        ]
        base_manager_name = "all_objects"

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{name or self.external_id} ({self.external_id})"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ConsentStatus(models.TextChoices):
    GRANTED = "granted", "Granted"
    WITHDRAWN = "withdrawn", "Withdrawn"
    PENDING = "pending", "Awaiting confirmation (double opt-in)"


class ConsentAction(models.TextChoices):
    GRANTED = "granted", "Granted"
    WITHDRAWN = "withdrawn", "Withdrawn"
    REQUESTED = "requested", "Requested (double opt-in pending)"
    CONFIRMED = "confirmed", "Confirmed (double opt-in)"


class ConsentRecord(AppendOnlyModel):
    """One consent decision, as it happened. Never edited; the latest one per channel wins."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consent_records")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    action = models.CharField(max_length=10, choices=ConsentAction.choices)
    source = models.CharField(
        max_length=64, help_text="Where it was given: signup_form, crm_import, unsubscribe_link…"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    note = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["customer", "channel", "occurred_at"], name="consent_customer_channel_idx")
        ]
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel} {self.action} ({self.source})"


class CustomerConsent(models.Model):
    """Current consent per channel, derived from the ledger in the same transaction as each record."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    status = models.CharField(max_length=10, choices=ConsentStatus.choices)
    source = models.CharField(max_length=64, blank=True, default="")
    changed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "channel"], name="consent_state_unique")]
        indexes = [models.Index(fields=["channel", "status"], name="consent_channel_status_idx")]

    def __str__(self) -> str:
        return f"{self.channel}: {self.status}"


class SuppressionReason(models.TextChoices):
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Hard bounce"
    COMPLAINT = "complaint", "Spam complaint"
    ERASED = "erased", "Erased (GDPR)"
    MANUAL = "manual", "Added by staff"


class Suppression(models.Model):
    """Addresses never to be mailed again, kept as a keyed hash so an erasure leaves no address behind."""

    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    address_hash = models.CharField(max_length=64)
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    detail = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "address_hash"], name="suppression_unique")]

    def __str__(self) -> str:
        return f"{self.channel}:{self.address_hash[:12]}… ({self.reason})"


class PushSubscription(TimeStampedModel):
    class Kind(models.TextChoices):
        WEBPUSH = "webpush", "Web Push (VAPID)"
        HTTP = "http", "Generic HTTP provider"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="push_subscriptions")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.WEBPUSH)
    endpoint = models.URLField(max_length=1000)
    p256dh = models.CharField(max_length=200, blank=True, default="")
    auth = models.CharField(max_length=100, blank=True, default="")
    token = models.CharField(
        max_length=500, blank=True, default="", help_text="Device token for HTTP providers"
    )
    active = models.BooleanField(default=True)
    last_error = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "endpoint"], name="push_subscription_unique")
        ]
        indexes = [models.Index(fields=["customer", "active"], name="push_customer_active_idx")]

    def __str__(self) -> str:
        return f"{self.kind} subscription #{self.pk}"


class Order(TimeStampedModel):
    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        PAID = "paid", "Paid"
        FULFILLED = "fulfilled", "Fulfilled"
        CANCELLED = "cancelled", "Cancelled"
        RETURNED = "returned", "Returned"

    external_id = models.CharField(max_length=191, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLACED)
    placed_at = models.DateTimeField()
    currency = models.CharField(max_length=3, default="GBP")
    total = models.DecimalField(
        max_digits=14, decimal_places=2, default=0, help_text="Sum of the lines (negative for a refund)"
    )
    attributes = models.JSONField(default=dict, blank=True)
    payload_hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["customer", "placed_at"], name="order_customer_placed_idx"),
            models.Index(fields=["placed_at"], name="order_placed_idx"),
        ]

    def __str__(self) -> str:
        return f"Order {self.external_id}"


class OrderLine(models.Model):
    class Kind(models.TextChoices):
        SALE = "sale", "Sale"
        RETURN = "return", "Return"
        CANCELLATION = "cancellation", "Cancellation"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    line_no = models.PositiveIntegerField()
    product = models.ForeignKey(
        "catalog.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="order_lines"
    )
    sku = models.CharField(max_length=64)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.SALE)
    quantity = models.IntegerField(help_text="Negative for returns and cancellations")
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "line_no"], name="order_line_unique"),
            models.CheckConstraint(condition=~Q(quantity=0), name="order_line_quantity_nonzero"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="order_line_price_nonnegative"),
            models.CheckConstraint(
                condition=Q(kind="sale", quantity__gt=0) | (~Q(kind="sale") & Q(quantity__lt=0)),
                name="order_line_sign_matches_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} × {self.quantity}"

    @property
    def amount(self):
        return self.quantity * self.unit_price


class EventType(models.TextChoices):
    VIEW = "view", "Product view"
    ADD_TO_CART = "add_to_cart", "Add to cart"
    PURCHASE = "purchase", "Purchase"
    SEARCH = "search", "Search"
    CUSTOM = "custom", "Custom"


class Event(models.Model):
    """Behaviour the shop reports. The idempotency key makes a retried batch count once."""

    # The composite indexes below lead with customer and product, so the automatic FK indexes
    # would only duplicate them (and slow every insert).
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events", db_index=False)
    type = models.CharField(max_length=16, choices=EventType.choices)
    name = models.CharField(max_length=64, blank=True, default="", help_text="For custom events")
    product = models.ForeignKey(
        "catalog.Product",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
        db_index=False,
    )
    quantity = models.IntegerField(default=1)
    value = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    idempotency_key = models.CharField(max_length=200)
    payload_hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        # A constraint rather than unique=True: PostgreSQL then builds no extra LIKE index.
        constraints = [models.UniqueConstraint(fields=["idempotency_key"], name="event_idempotency_unique")]
        indexes = [
            models.Index(fields=["customer", "type", "occurred_at"], name="event_customer_type_time_idx"),
            models.Index(fields=["type", "occurred_at"], name="event_type_time_idx"),
            models.Index(fields=["product", "type"], name="event_product_type_idx"),
            models.Index(fields=["received_at"], name="event_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} by customer #{self.customer_id}"
