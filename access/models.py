from __future__ import annotations

from django.conf import settings
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

# Fields whose change does not matter to authentication (the once-a-minute usage touch).
_UNTRACKED_FIELDS = frozenset({"last_used_at"})


class ApiKeyQuerySet(models.QuerySet):
    """Queryset updates and deletes tell the verified-key cache (access.key_cache) to forget."""

    def update(self, **kwargs):
        rows = super().update(**kwargs)
        if set(kwargs) - _UNTRACKED_FIELDS:
            from access.key_cache import keys_changed

            keys_changed()
        return rows

    update.alters_data = True

    def delete(self):
        from access.key_cache import keys_changed

        result = super().delete()
        keys_changed()
        return result

    delete.alters_data = True


class ApiKeyManager(BaseAPIKeyManager.from_queryset(ApiKeyQuerySet)):
    pass


class ApiKey(AbstractAPIKey):
    """An integration's key: stored as a SHA-512 hash, scoped, revocable, rate-limited."""

    objects = ApiKeyManager()

    scopes = models.JSONField(default=list, help_text="e.g. customers:read, orders:write")
    rate = models.CharField(
        max_length=32, blank=True, default="", help_text="Throttle override such as 600/min; empty = default"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])


class AuditEntry(models.Model):
    """Who did what: launches, pauses, promotions, erasures, key changes."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    api_key_name = models.CharField(max_length=50, blank=True, default="")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_repr = models.CharField(max_length=200, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["target_type", "target_id"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        who = self.actor or self.api_key_name or "system"
        return f"{who} {self.action} {self.target_repr}"
