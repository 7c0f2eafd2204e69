from django.apps import AppConfig


class RecommenderConfig(AppConfig):
    name = "recommender"

    def ready(self) -> None:
        from customers.signals import events_ingested, orders_ingested

        events_ingested.connect(_events_ingested, dispatch_uid="recommender.touch_events")
        orders_ingested.connect(_orders_ingested, dispatch_uid="recommender.touch_orders")


def _events_ingested(sender, event_ids, **kwargs) -> None:
    """Note whose behaviour changed; `recommender.refresh_touched` re-scores them (after commit)."""
    from recommender.services.refresh import touch_for_events

    touch_for_events(event_ids=event_ids)


def _orders_ingested(sender, order_ids, **kwargs) -> None:
    from recommender.services.refresh import touch_for_orders

    touch_for_orders(order_ids=order_ids)
