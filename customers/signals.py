"""Signals other apps listen to, so customers never imports them.

Sent after the ingesting transaction commits, with the ids of the rows created (never personal
data): campaigns starts event triggers and attributes orders from them; segments notes the
customers as touched for their incremental refresh.
"""

from django.dispatch import Signal

events_ingested = Signal()  # kwargs: event_ids: list[int]
orders_ingested = Signal()  # kwargs: order_ids: list[int]
# A profile changed: fields or attributes (API upsert, PATCH, import, admin), consent state, or the
# lifecycle (soft-deleted, restored, erased). Segments refresh these customers incrementally.
customers_changed = Signal()  # kwargs: customer_ids: list[int]
