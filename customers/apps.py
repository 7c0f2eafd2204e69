from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        # Registers the customers app's own GDPR export sections and erasure steps.
        from customers import gdpr  # noqa: F401
