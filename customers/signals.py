"""Signals other apps listen to, so customers never imports them.

Sent after the ingesting transaction commits, with the ids of the rows created (never personal
data): campaigns starts event triggers and attributes orders from them.
"""

from django.dispatch import Signal

events_ingested = Signal()  # kwargs: event_ids: list[int]
orders_ingested = Signal()  # kwargs: order_ids: list[int]
