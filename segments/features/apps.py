from django.apps import AppConfig


class CustomerAnalyticsConfig(AppConfig):
    name = "segments.features"
    label = "segment_features"
    verbose_name = "Customer analytics"
    default_auto_field = "django.db.models.BigAutoField"
