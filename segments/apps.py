from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "segments"

    def ready(self) -> None:
        # Ingest tells us which events and orders committed: their customers are noted as
        # touched (in the database, the truth) and a drain is enqueued; beat drains every minute too.
        # Profile changes (fields, attributes, consent, deletion) touch their customers the same way.
        from customers.signals import customers_changed, events_ingested, orders_ingested

        events_ingested.connect(_events_ingested, dispatch_uid="segments.touched_by_events")
        orders_ingested.connect(_orders_ingested, dispatch_uid="segments.touched_by_orders")
        customers_changed.connect(_customers_changed, dispatch_uid="segments.touched_by_profiles")


def _events_ingested(sender, *, event_ids, **kwargs) -> None:
    _touched(event_ids=list(event_ids))


def _orders_ingested(sender, *, order_ids, **kwargs) -> None:
    _touched(order_ids=list(order_ids))


def _customers_changed(sender, *, customer_ids, **kwargs) -> None:
    _touched(customer_ids=list(customer_ids))


def _touched(*, customer_ids=None, **ids) -> None:
    import logging

    from segments.drain import record_touched, touch_customers
    from segments.models import RollupState, Segment
    from segments.tasks import refresh_touched

    # The rollups need the touch too, segments or not: previews read touched customers raw.
    if (
        not Segment.objects.filter(kind=Segment.Kind.DYNAMIC, active=True).exists()
        and not RollupState.objects.exists()
    ):
        return
    try:
        if customer_ids is not None:
            touch_customers(customer_ids=customer_ids)
        else:
            record_touched(**ids)
    except Exception:  # noqa: BLE001 - ingest already committed; the periodic full refresh catches up
        logging.getLogger(__name__).exception("could not record touched customers")
        return
    refresh_touched.delay()
