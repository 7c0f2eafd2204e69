"""The three roles people hold in the admin, as Django groups with model permissions.

The same group names drive the API's scopes (access.scopes.ROLE_SCOPES), so a marketer may do in
the admin exactly what their session may do through the API:

* Analyst: views every business model (read-only) and may export reports; no users, no keys.
* Marketer: what an analyst sees, plus writing campaigns, variants, templates, segments and
  experiments; never users, groups or API keys.
* Admin: every permission (like a superuser, but revocable by group).

`ensure_roles` runs after every migrate (post_migrate), so the groups follow new models.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from access.scopes import ROLE_ADMIN, ROLE_ANALYST, ROLE_MARKETER

#: Apps whose models an analyst may read.
BUSINESS_APPS = (
    "customers",
    "catalog",
    "loyalty",
    "recommender",
    "segments",
    "campaigns",
    "experiments",
    "webhooks",
)
#: Models an analyst may read outside those apps.
ANALYST_EXTRA_VIEW = (("access", "auditentry"),)
#: App labels (or app.model) a marketer may add, change and delete.
MARKETER_WRITES = (
    "campaigns.campaign",
    "campaigns.variant",
    "campaigns.messagetemplate",
    "segments",
    "experiments",
)


def _matches(perm: Permission, rules: tuple[str, ...]) -> bool:
    app, model = perm.content_type.app_label, perm.content_type.model
    return any(rule == app or rule == f"{app}.{model}" for rule in rules)


@transaction.atomic
def ensure_roles() -> dict[str, int]:
    """Create or update the role groups; returns how many permissions each holds."""
    perms = list(Permission.objects.select_related("content_type"))
    views = [
        p
        for p in perms
        if p.codename.startswith("view_")
        and (
            p.content_type.app_label in BUSINESS_APPS
            or (p.content_type.app_label, p.content_type.model) in ANALYST_EXTRA_VIEW
        )
    ]
    writes = [
        p
        for p in perms
        if p.codename.split("_", 1)[0] in ("add", "change", "delete") and _matches(p, MARKETER_WRITES)
    ]
    wanted = {ROLE_ANALYST: views, ROLE_MARKETER: views + writes, ROLE_ADMIN: perms}
    counts = {}
    for name, granted in wanted.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(granted)
        counts[name] = len(granted)
    return counts


def ensure_roles_after_migrate(sender, app_config=None, **kwargs) -> None:
    """post_migrate fires once per app; act on the last one, when every permission exists."""
    from django.apps import apps

    if sender.label != list(apps.get_app_configs())[-1].label:
        return
    ensure_roles()
