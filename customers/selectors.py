"""Reads about customers."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from core.hashing import email_digest
from customers.models import Channel, ConsentStatus, Customer, CustomerConsent, Suppression


def consent_status(*, customer: Customer, channel: str) -> str | None:
    return (
        CustomerConsent.objects.filter(customer=customer, channel=channel)
        .values_list("status", flat=True)
        .first()
    )


def is_suppressed(*, address: str, channel: str = Channel.EMAIL) -> bool:
    return Suppression.objects.filter(channel=channel, address_hash=email_digest(address)).exists()


def customers_with_consent(*, channel: str, queryset: QuerySet[Customer] | None = None) -> QuerySet[Customer]:
    """Customers whose current consent on `channel` is granted (set-wise, one query)."""
    base = queryset if queryset is not None else Customer.objects.all()
    granted = CustomerConsent.objects.filter(
        customer=OuterRef("pk"), channel=channel, status=ConsentStatus.GRANTED
    )
    return base.filter(Exists(granted))
