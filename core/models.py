from __future__ import annotations

from django.db import models


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete a row of an append-only ledger."""


class AppendOnlyModel(models.Model):
    """A ledger row: written once, never updated or deleted through the ORM.

    Corrections are new rows (an adjustment, a withdrawal), so the history a marketer or an
    auditor reads is the history that happened.
    """

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only")


class IdempotencyRecord(models.Model):
    """The first answer given to a request carrying an idempotency key.

    A replay with the same payload returns this answer and changes nothing; the same key with
    another payload is a conflict (ARCHITECTURE.md, Settled questions: Idempotency).
    """

    scope = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    owner = models.CharField(max_length=100, blank=True, default="")
    payload_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "owner", "key"], name="idempotency_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"
