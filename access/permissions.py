from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from access.models import ApiKey
from access.scopes import scopes_for_user


def required_scope(request, view) -> str | None:
    resource = getattr(view, "scope_resource", None)
    if resource is None:
        return None
    action = getattr(view, "scope_action", None)
    if action is None:
        action = "read" if request.method in SAFE_METHODS else "write"
    return f"{resource}:{action}"


class HasResourceScope(BasePermission):
    """API keys need the view's `<resource>:<read|write>` scope; people need a role granting it.

    Views without `scope_resource` are closed to everyone but superusers, so a forgotten
    declaration fails safe.
    """

    message = "This credential lacks the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        scope = required_scope(request, view)
        if isinstance(request.auth, ApiKey):
            return scope is not None and request.auth.has_scope(scope)
        user = request.user
        if not getattr(user, "is_authenticated", False) or not user.is_staff:
            return False
        if scope is None:
            return user.is_superuser
        return scope in scopes_for_user(user)
