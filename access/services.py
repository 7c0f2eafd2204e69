from __future__ import annotations

from typing import Any

from django.db import models

from access.models import ApiKey, AuditEntry
from access.scopes import expand_scopes


def create_api_key(*, name: str, scopes: list[str], rate: str = "") -> tuple[ApiKey, str]:
    """Create a key and return it with its plain secret, which is never stored or shown again."""
    if not name or len(name) > 50:
        raise ValueError("A key needs a name of 1 to 50 characters")
    api_key, secret = ApiKey.objects.create_key(name=name, scopes=expand_scopes(scopes), rate=rate)
    record_audit(actor=None, action="api_key.created", target=api_key, details={"scopes": api_key.scopes})
    return api_key, secret


def revoke_api_key(*, api_key: ApiKey, actor=None) -> None:
    ApiKey.objects.filter(pk=api_key.pk).update(revoked=True)
    record_audit(actor=actor, action="api_key.revoked", target=api_key)


def record_audit(
    *,
    actor,
    action: str,
    target: models.Model | None = None,
    details: dict[str, Any] | None = None,
    api_key: ApiKey | None = None,
) -> AuditEntry:
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEntry.objects.create(
        actor=user,
        api_key_name=api_key.name if api_key is not None else "",
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk)[:64] if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        details=details or {},
    )


def audit_request(request, *, action: str, target=None, details=None) -> AuditEntry:
    """Audit from a view or admin action: the actor is the session user or the API key."""
    api_key = request.auth if isinstance(getattr(request, "auth", None), ApiKey) else None
    return record_audit(actor=request.user, action=action, target=target, details=details, api_key=api_key)
