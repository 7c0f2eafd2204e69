from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self) -> None:
        # ESPs behind django-anymail report bounces and complaints through its tracking signal.
        from anymail.signals import tracking

        from campaigns.tracking.webhooks import on_anymail_tracking

        tracking.connect(on_anymail_tracking, dispatch_uid="campaigns.on_anymail_tracking")
