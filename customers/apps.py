from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        # Registers the customers app's own GDPR sections, erasure steps and timeline sources.
        from customers import gdpr, timeline  # noqa: F401
