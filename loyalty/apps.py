from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = "Loyalty"

    def ready(self) -> None:
        from customers.gdpr import register_export_section
        from loyalty.selectors import export_loyalty

        register_export_section("loyalty", export_loyalty)

        from customers.timeline import register_timeline_source
        from loyalty.selectors import points_timeline

        register_timeline_source("points", points_timeline)
