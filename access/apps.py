from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access: API keys, roles, audit"

    def ready(self) -> None:
        from access import openapi  # noqa: F401  (registers the schema extension)
