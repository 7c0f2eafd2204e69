"""Loyalty programs: tiers, memberships and an append-only points ledger.

The ledger (`PointsTransaction`) is never edited; the balance is derived from it and cached on
the membership in the same transaction as each entry. Earned points are tracked in lots so
expiry and redemption consume the oldest points first without rewriting history.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.models import AppendOnlyModel, TimeStampedModel


class LoyaltyProgram(TimeStampedModel):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=64, unique=True)
    currency = models.CharField(max_length=3, default="GBP")
    points_per_currency_unit = models.DecimalField(
        max_digits=8, decimal_places=3, default=1, help_text="Points earned per unit of order value"
    )
    event_points = models.JSONField(
        default=dict, blank=True, help_text='Points per event type, e.g. {"review": 50, "add_to_cart": 0}'
    )
    points_expiry_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: points never expire"
    )
    allow_negative_balance = models.BooleanField(default=False)
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class Tier(models.Model):
    program = models.ForeignKey(LoyaltyProgram, on_delete=models.CASCADE, related_name="tiers")
    name = models.CharField(max_length=64)
    threshold = models.PositiveIntegerField(help_text="Lifetime points needed to reach this tier")
    benefits = models.TextField(blank=True, default="")
    multiplier = models.DecimalField(
        max_digits=5, decimal_places=2, default=1, help_text="Earning multiplier"
    )

    class Meta:
        ordering = ["program", "threshold"]
        constraints = [
            models.UniqueConstraint(fields=["program", "name"], name="tier_name_unique"),
            models.UniqueConstraint(fields=["program", "threshold"], name="tier_threshold_unique"),
            models.CheckConstraint(condition=Q(multiplier__gt=0), name="tier_multiplier_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.program}: {self.name}"


class Membership(TimeStampedModel):
    program = models.ForeignKey(LoyaltyProgram, on_delete=models.CASCADE, related_name="memberships")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="memberships")
    tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")
    balance = models.IntegerField(default=0, help_text="Cached sum of the ledger")
    lifetime_points = models.PositiveIntegerField(default=0, help_text="Cached sum of points ever earned")
    joined_at = models.DateTimeField()
    tier_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["program", "customer"], name="membership_unique")]
        indexes = [
            models.Index(fields=["program", "tier"], name="membership_program_tier_idx"),
            models.Index(fields=["customer"], name="membership_customer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.program}"


class PointsTransaction(AppendOnlyModel):
    class Kind(models.TextChoices):
        EARN = "earn", "Earn"
        REDEEM = "redeem", "Redeem"
        EXPIRE = "expire", "Expire"
        ADJUST = "adjust", "Adjust"

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="transactions")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    points = models.IntegerField(help_text="Signed: positive earns, negative spends")
    balance_after = models.IntegerField()
    idempotency_key = models.CharField(max_length=200)
    payload_hash = models.CharField(max_length=64, blank=True, default="")
    reason = models.CharField(max_length=255, blank=True, default="")
    source_type = models.CharField(
        max_length=32, blank=True, default="", help_text="order, event, reward, staff…"
    )
    source_id = models.CharField(max_length=191, blank=True, default="")
    occurred_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["membership", "idempotency_key"], name="points_idempotency_unique"
            ),
            models.CheckConstraint(condition=~Q(points=0), name="points_nonzero"),
            models.CheckConstraint(
                condition=Q(kind="earn", points__gt=0)
                | Q(kind__in=["redeem", "expire"], points__lt=0)
                | Q(kind="adjust"),
                name="points_sign_matches_kind",
            ),
        ]
        indexes = [models.Index(fields=["membership", "occurred_at"], name="points_membership_time_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.points:+d}"


class PointsLot(models.Model):
    """What is left of one earning: consumed oldest-first by redemptions and expired when due."""

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="lots")
    earned_by = models.OneToOneField(PointsTransaction, on_delete=models.CASCADE, related_name="lot")
    remaining = models.PositiveIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["membership", "expires_at"], name="lot_membership_expiry_idx"),
            models.Index(fields=["expires_at"], name="lot_expiry_idx", condition=Q(remaining__gt=0)),
        ]

    def __str__(self) -> str:
        return f"{self.remaining} points left of #{self.earned_by_id}"


class Reward(TimeStampedModel):
    program = models.ForeignKey(LoyaltyProgram, on_delete=models.CASCADE, related_name="rewards")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, default="")
    cost_points = models.PositiveIntegerField()
    minimum_tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL)
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(cost_points__gt=0), name="reward_cost_positive")]

    def __str__(self) -> str:
        return f"{self.name} ({self.cost_points} points)"


class Redemption(models.Model):
    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="redemptions")
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="redemptions")
    transaction = models.OneToOneField(PointsTransaction, on_delete=models.PROTECT, related_name="redemption")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.reward_id} for membership {self.membership_id}"
