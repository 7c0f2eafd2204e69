from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self) -> None:
        # ESPs behind django-anymail report bounces and complaints through its tracking signal.
        from anymail.signals import tracking

        from campaigns.tracking.webhooks import on_anymail_tracking

        tracking.connect(on_anymail_tracking, dispatch_uid="campaigns.on_anymail_tracking")

        # Ingest tells us about new events and orders after commit; the work runs in a task.
        from customers.signals import events_ingested, orders_ingested

        events_ingested.connect(_enqueue_event_triggers, dispatch_uid="campaigns.event_triggers")
        orders_ingested.connect(_enqueue_attribution, dispatch_uid="campaigns.attribution")

        # An erasure scrubs provider replies quoting the customer from the ledger (campaigns/erasure.py).
        from campaigns.erasure import scrub_campaign_rows
        from customers.gdpr import register_erasure_step

        register_erasure_step("campaign_rows", scrub_campaign_rows)


def _enqueue_event_triggers(sender, *, event_ids, **kwargs) -> None:
    from campaigns.tasks import on_events_ingested

    for start in range(0, len(event_ids), 5000):
        on_events_ingested.delay(event_ids[start : start + 5000])


def _enqueue_attribution(sender, *, order_ids, **kwargs) -> None:
    from campaigns.tasks import on_orders_ingested

    for start in range(0, len(order_ids), 5000):
        on_orders_ingested.delay(order_ids[start : start + 5000])
