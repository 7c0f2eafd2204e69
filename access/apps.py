from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access: API keys, roles, audit"

    def ready(self) -> None:
        from access import openapi  # noqa: F401  (registers the schema extension)
        from access.roles import ensure_roles_after_migrate

        post_migrate.connect(ensure_roles_after_migrate, dispatch_uid="access.ensure_roles")
