"""API scopes and admin roles.

A scope is `<resource>:read` or `<resource>:write`; `<resource>:*` grants both. Keys get only
what an integration needs (a shop feed writes products and orders and reads nothing else).
"""

from __future__ import annotations

RESOURCES = (
    "customers",
    "products",
    "orders",
    "events",
    "loyalty",
    "recommendations",
    "segments",
    "campaigns",
    "templates",
    "experiments",
    "webhooks",
    "gdpr",
)
ACTIONS = ("read", "write")

ALL_SCOPES = tuple(f"{r}:{a}" for r in RESOURCES for a in ACTIONS)

# Roles for people using the admin (and the API with a session).
ROLE_ADMIN = "Admin"
ROLE_MARKETER = "Marketer"
ROLE_ANALYST = "Analyst"
ROLES = (ROLE_ADMIN, ROLE_MARKETER, ROLE_ANALYST)

ROLE_SCOPES: dict[str, frozenset[str]] = {
    ROLE_ADMIN: frozenset(ALL_SCOPES),
    ROLE_MARKETER: frozenset(
        [f"{r}:read" for r in RESOURCES if r != "gdpr"]
        + [
            "campaigns:write",
            "segments:write",
            "templates:write",
            "experiments:write",
            "recommendations:write",
        ]
    ),
    ROLE_ANALYST: frozenset(f"{r}:read" for r in RESOURCES if r != "gdpr"),
}


class ScopeError(ValueError):
    pass


def expand_scopes(requested: list[str] | tuple[str, ...]) -> list[str]:
    """Validate and normalise scope strings; `all` and `<resource>:*` expand."""
    out: set[str] = set()
    for raw in requested:
        for item in str(raw).replace(",", " ").split():
            scope = item.strip().lower()
            if scope in ("all", "*"):
                out.update(ALL_SCOPES)
                continue
            resource, _, action = scope.partition(":")
            if resource not in RESOURCES:
                raise ScopeError(
                    f"Unknown resource {resource!r} in scope {item!r}; known: {', '.join(RESOURCES)}"
                )
            if action == "*":
                out.update(f"{resource}:{a}" for a in ACTIONS)
            elif action in ACTIONS:
                out.add(scope)
            else:
                raise ScopeError(f"Unknown action {action!r} in scope {item!r}; use read, write or *")
    if not out:
        raise ScopeError("At least one scope is required")
    return sorted(out)


def scopes_for_user(user) -> frozenset[str]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return ROLE_SCOPES[ROLE_ADMIN]
    granted: set[str] = set()
    for name in user.groups.values_list("name", flat=True):
        granted |= ROLE_SCOPES.get(name, frozenset())
    return frozenset(granted)
