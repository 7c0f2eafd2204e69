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
    # The worker training this version renews its lease while it works; a lease that expires
    # while the version is still `training` means the worker died (killed, out of memory,
    # restarted), and `recommender.reconcile` retries the run or, after MAX_TRAINING_ATTEMPTS,
    # fails it with the reason.
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Training runs started for this version")
    requeued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the reconciler last enqueued its run"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    trained_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True, help_text="When its recommendations were stored")
    previous_version = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The version that was active when this one was promoted (rollback goes back to it)",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.config} v{self.pk} ({self.algorithm})"


class Recommendation(models.Model):
    """Top-N products per customer from one model version, written in bulk by `score_all`.

    The foreign keys carry no index of their own: the unique (customer, version, rank) index
    covers every lookup, and each extra index slows the COPY of
    millions of rows that a full scoring run writes. Nor do they carry a database constraint:
    these rows are derived data, rebuilt by every scoring run, and PostgreSQL's per-row foreign
    key triggers cost more than everything else in the write (measured: 25 s of 39 s for 340k
    rows). The scorer writes only customers and products that exist, and deletes through the
    ORM still cascade (Django's collector does that, not the database).
    """

    model_version = models.ForeignKey(
        ModelVersion,
        on_delete=models.CASCADE,
        related_name="recommendations",
        db_index=False,
        db_constraint=False,
    )
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.CASCADE,
        related_name="recommendations",
        db_index=False,
        db_constraint=False,
    )
    rank = models.PositiveSmallIntegerField()
    product = models.ForeignKey(
        "catalog.Product", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    score = models.FloatField()
    # Why: a ``Reason`` code and the customer's product that contributed most, rendered to text
    # when read (recommender/explanations.py). ``explanation`` is only for rows that carry their
    # own text (written before migration 0006, or by hand); the scorer leaves it NULL.
    reason = models.SmallIntegerField(default=0, db_default=0)
    because_product = models.ForeignKey(
        "catalog.Product",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    explanation = models.JSONField(null=True, blank=True, default=None)

    # The primary key is (customer, version, rank): its one index serves every read (a customer's
    # rows of a version) and a chunk's range delete (customer range, one version). A surrogate
    # ``id`` cost a sequence value and a second index per row (COPY of 512k rows: 1.0 s with it,
    # 0.6 s without); an index in the other column order slowed every COPY and served only
    # whole-version scans (pruning), which read most of the table anyway (docs/recommender.md,
    # Serving figures).
    pk = models.CompositePrimaryKey("customer", "model_version", "rank")

    def __str__(self) -> str:
        return f"#{self.rank} {self.product_id} for {self.customer_id}"


class ScoringRun(models.Model):
    """One `score_all` of a model version: its chunks, and whether to promote when they are done.

    The database decides who scores what (chunk states with leases), so a task delivered twice
    or a worker killed mid-chunk never loses or doubles a customer's rows.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scoring_runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    promote_when_done = models.BooleanField(default=False)
    chunks_total = models.PositiveIntegerField(default=0)
    customers_total = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version"],
                condition=Q(status="running"),
                name="one_running_scoring_per_version",
            )
        ]

    def __str__(self) -> str:
        return f"scoring of {self.model_version} ({self.status})"


class ScoringChunk(models.Model):
    """A slice ``[start, stop)`` of the model's customers; leased by the worker that scores it."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    start = models.PositiveIntegerField()
    stop = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    rows_written = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="scoring_chunk_unique")]

    def __str__(self) -> str:
        return f"chunk {self.number} of run {self.run_id} ({self.state})"


class TouchedCustomer(models.Model):
    """A customer with new events or orders since their recommendations were stored.

    Filled by the ingest signals, drained by `recommender.refresh_touched` (beat): the table is
    the queue, so a lost task or a Redis restart loses nothing.
    """

    customer = models.OneToOneField(
        "customers.Customer", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    touched_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"customer #{self.customer_id} touched at {self.touched_at:%Y-%m-%d %H:%M}"
