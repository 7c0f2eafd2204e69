"""The record of each analytics run: what was computed, when, on which data, and what came out.

Per-customer values live in `segments.CustomerFeatures`; what describes the whole base (fitted
model parameters, cluster profiles, the RFM mapping used, distributions for the charts) is kept
here, so the admin and the API can explain the numbers, and a fit that failed is a visible row
with its reason rather than a silent gap.
"""

from __future__ import annotations

from django.db import models


class AnalyticsRun(models.Model):
    class Kind(models.TextChoices):
        FEATURES = "features", "RFM and features"
        CLUSTERS = "clusters", "Clusters"
        CLV = "clv", "Churn and lifetime value"

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    as_of = models.DateTimeField(help_text="End of the order history the run looked at")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    customers = models.PositiveIntegerField(default=0, help_text="Customers written")
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "customer analytics run"
        # The admin lists this model as the "Customer analytics" page (the dashboard).
        verbose_name_plural = "customer analytics"
        indexes = [models.Index(fields=["kind", "state", "-started_at"], name="analytics_run_latest_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run {self.pk} ({self.state})"

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
