from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "segments"

    def ready(self) -> None:
        # Ingest tells us which events and orders committed: their customers are noted as
        # touched (in the database, the truth) and a drain is enqueued; beat drains every minute too.
        from customers.signals import events_ingested, orders_ingested

        events_ingested.connect(_events_ingested, dispatch_uid="segments.touched_by_events")
        orders_ingested.connect(_orders_ingested, dispatch_uid="segments.touched_by_orders")


def _events_ingested(sender, *, event_ids, **kwargs) -> None:
    _touched(event_ids=list(event_ids))


def _orders_ingested(sender, *, order_ids, **kwargs) -> None:
    _touched(order_ids=list(order_ids))


def _touched(**ids) -> None:
    import logging

    from segments.models import Segment
    from segments.services import record_touched
    from segments.tasks import refresh_touched

    if not Segment.objects.filter(kind=Segment.Kind.DYNAMIC, active=True).exists():
        return
    try:
        record_touched(**ids)
    except Exception:  # noqa: BLE001 - ingest already committed; the periodic full refresh catches up
        logging.getLogger(__name__).exception("could not record touched customers")
        return
    refresh_touched.delay()
