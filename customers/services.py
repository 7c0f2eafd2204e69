"""Writes about customers: consent, suppression.

Keyword-only functions; views, admin actions, tasks and importers stay thin and call these.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core.hashing import email_digest
from customers.models import (
    Channel,
    ConsentAction,
    ConsentRecord,
    ConsentStatus,
    Customer,
    CustomerConsent,
    Suppression,
    SuppressionReason,
)
from webhooks.services import publish

_STATUS_AFTER = {
    ConsentAction.GRANTED: ConsentStatus.GRANTED,
    ConsentAction.CONFIRMED: ConsentStatus.GRANTED,
    ConsentAction.WITHDRAWN: ConsentStatus.WITHDRAWN,
    ConsentAction.REQUESTED: ConsentStatus.PENDING,
}


class ConsentError(ValueError):
    pass


@transaction.atomic
def record_consent(
    *,
    customer: Customer,
    channel: str,
    action: str,
    source: str,
    ip: str | None = None,
    occurred_at: datetime | None = None,
    note: str = "",
) -> ConsentRecord:
    """Append a consent decision and update the derived current state.

    A decision older than the one the state already reflects is kept in the ledger (history is
    history) but does not overwrite the newer state: a late-arriving CRM sync cannot re-grant
    consent that a customer withdrew since.
    """
    if channel not in Channel.values:
        raise ConsentError(f"Unknown channel {channel!r}; use one of {', '.join(Channel.values)}")
    if action not in ConsentAction.values:
        raise ConsentError(f"Unknown consent action {action!r}; use one of {', '.join(ConsentAction.values)}")
    if not source:
        raise ConsentError("A consent decision needs a source")
    occurred_at = occurred_at or timezone.now()
    record = ConsentRecord.objects.create(
        customer=customer,
        channel=channel,
        action=action,
        source=source[:64],
        ip=ip,
        occurred_at=occurred_at,
        note=note[:255],
    )
    status = _STATUS_AFTER[ConsentAction(action)]
    state = CustomerConsent.objects.select_for_update().filter(customer=customer, channel=channel).first()
    previous = state.status if state else None
    if state is None:
        CustomerConsent.objects.create(
            customer=customer, channel=channel, status=status, source=source[:64], changed_at=occurred_at
        )
    elif occurred_at >= state.changed_at:
        state.status, state.source, state.changed_at = status, source[:64], occurred_at
        state.save(update_fields=["status", "source", "changed_at"])
    else:
        status = state.status
    if previous != ConsentStatus.WITHDRAWN and status == ConsentStatus.WITHDRAWN:
        publish(
            topic="customer.unsubscribed",
            payload={
                "external_id": customer.external_id,
                "channel": channel,
                "source": source[:64],
                "at": occurred_at.isoformat(),
            },
        )
    return record


def suppress_address(
    *, address: str, reason: str, channel: str = Channel.EMAIL, detail: str = ""
) -> Suppression:
    """Never message this address again on this channel (idempotent)."""
    if reason not in SuppressionReason.values:
        raise ValueError(f"Unknown suppression reason {reason!r}")
    entry, _ = Suppression.objects.get_or_create(
        channel=channel,
        address_hash=email_digest(address),
        defaults={"reason": reason, "detail": detail[:255]},
    )
    return entry


def lift_suppression(*, address: str, channel: str = Channel.EMAIL) -> int:
    """Remove an unsubscribe/manual suppression (e.g. the customer re-subscribed); erasures stay."""
    deleted, _ = (
        Suppression.objects.filter(channel=channel, address_hash=email_digest(address))
        .exclude(reason=SuppressionReason.ERASED)
        .delete()
    )
    return deleted
