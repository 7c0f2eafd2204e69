from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access: API keys, roles, audit"

    def ready(self) -> None:
        from access import openapi  # noqa: F401  (registers the schema extension)
        from access.roles import ensure_roles_after_migrate

        post_migrate.connect(ensure_roles_after_migrate, dispatch_uid="access.ensure_roles")
        post_save.connect(_key_row_changed, sender="access.ApiKey", dispatch_uid="access.key_saved")
        post_delete.connect(_key_row_changed, sender="access.ApiKey", dispatch_uid="access.key_deleted")


def _key_row_changed(sender, **kwargs) -> None:
    from access.key_cache import keys_changed

    keys_changed()
