"""Recommender configurations, versioned models and the stored per-customer recommendations."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel


class RecommenderConfig(TimeStampedModel):
    """A named recommender a campaign can use, e.g. "default" or "new-arrivals"; one active version each."""

    name = models.SlugField(max_length=64, unique=True)
    algorithm = models.CharField(
        max_length=32, default="auto", help_text="popularity, item_knn, ease, als, …, or auto"
    )
    params = models.JSONField(default=dict, blank=True)
    items_per_customer = models.PositiveSmallIntegerField(default=20)
    exclude_purchased = models.BooleanField(default=True)
    repurchase_window_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Bought longer ago than this may be recommended again; empty = never"
    )
    in_stock_only = models.BooleanField(default=True)
    diversity = models.FloatField(default=0.0, help_text="0 = pure relevance, 1 = maximum diversity (MMR)")
    is_default = models.BooleanField(default=False)
    active_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_recommender"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        RETIRED = "retired", "Retired"

    config = models.ForeignKey(RecommenderConfig, on_delete=models.CASCADE, related_name="versions")
    algorithm = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRAINING)
    metrics = models.JSONField(default=dict, blank=True)
    n_customers = models.PositiveIntegerField(default=0)
    n_products = models.PositiveIntegerField(default=0)
    n_interactions = models.PositiveIntegerField(default=0)
    artifact = models.FileField(upload_to="models/", blank=True, default="")
    error = models.TextField(blank=True, default="")
    fit_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.config} v{self.pk} ({self.algorithm})"


class Recommendation(models.Model):
    """Top-N products per customer from one model version, written in bulk by `score_all`."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="recommendations")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="recommendations"
    )
    rank = models.PositiveSmallIntegerField()
    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    score = models.FloatField()
    explanation = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "customer", "rank"], name="recommendation_rank_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "model_version", "rank"], name="reco_customer_version_idx")
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.product_id} for {self.customer_id}"
