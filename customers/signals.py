"""Signals other apps listen to, so customers never imports them.

Sent after the ingesting transaction commits, with the ids of the rows created (never personal
data): campaigns starts event triggers and attributes orders from them; segments notes the
customers as touched for their incremental refresh.
"""

from collections.abc import Iterable

from django.db import transaction
from django.dispatch import Signal

events_ingested = Signal()  # kwargs: event_ids: list[int]
orders_ingested = Signal()  # kwargs: order_ids: list[int]
# A profile changed: fields or attributes (API upsert, PATCH, import, admin), consent state, or the
# lifecycle (soft-deleted, restored, erased). Segments refresh these customers incrementally.
customers_changed = Signal()  # kwargs: customer_ids: list[int]


def announce_changed(customer_ids: Iterable[int]) -> None:
    """Tell other apps (segments) after commit that these customers' profiles changed."""
    from customers.models import Customer  # models import nothing from here, but keep it lazy

    ids = sorted({int(pk) for pk in customer_ids})
    if ids:
        transaction.on_commit(lambda: customers_changed.send(sender=Customer, customer_ids=ids))
