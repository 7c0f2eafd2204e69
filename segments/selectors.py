"""Reads of segment membership: the one way campaigns learn who is in an audience."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Exists, OuterRef, QuerySet

from customers.models import Customer
from segments.models import Segment, SegmentMembership


def _current_members(segment_ids: list[int]):
    return SegmentMembership.objects.filter(
        customer=OuterRef("pk"), segment_id__in=segment_ids, exited_at__isnull=True
    )


def customers_in_segment(*, segment: Segment) -> QuerySet[Customer]:
    return Customer.objects.filter(Exists(_current_members([segment.pk])))


def audience(*, include: Iterable[Segment], exclude: Iterable[Segment] = ()) -> QuerySet[Customer]:
    """Customers in any included segment and in none of the excluded ones, as one query."""
    include_ids = [s.pk for s in include]
    exclude_ids = [s.pk for s in exclude]
    queryset = (
        Customer.objects.filter(Exists(_current_members(include_ids)))
        if include_ids
        else Customer.objects.none()
    )
    if exclude_ids:
        queryset = queryset.exclude(Exists(_current_members(exclude_ids)))
    return queryset
