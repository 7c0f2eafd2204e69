"""Consent: the append-only ledger and its derived state, double opt-in, the suppression list.

Keyword-only functions (re-exported by customers.services, where callers find them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing
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
from customers.signals import announce_changed
from webhooks.services import publish_many

_STATUS_AFTER = {
    ConsentAction.GRANTED: ConsentStatus.GRANTED,
    ConsentAction.CONFIRMED: ConsentStatus.GRANTED,
    ConsentAction.WITHDRAWN: ConsentStatus.WITHDRAWN,
    ConsentAction.REQUESTED: ConsentStatus.PENDING,
}


class ConsentError(ValueError):
    pass


@dataclass(frozen=True)
class ConsentDecision:
    customer_id: int
    external_id: str
    channel: str
    action: str
    source: str
    occurred_at: datetime
    ip: str | None = None
    note: str = ""


def _check_decision(channel: str, action: str, source: str) -> None:
    if channel not in Channel.values:
        raise ConsentError(f"Unknown channel {channel!r}; use one of {', '.join(Channel.values)}")
    if action not in ConsentAction.values:
        raise ConsentError(f"Unknown consent action {action!r}; use one of {', '.join(ConsentAction.values)}")
    if not source:
        raise ConsentError("A consent decision needs a source")


@transaction.atomic
def record_consents(
    *, decisions: Sequence[ConsentDecision], skip_unchanged: bool = False
) -> list[ConsentRecord]:
    """Append many consent decisions and update the derived states, in a fixed number of queries.

    A decision older than the one the state already reflects is kept in the ledger (history is
    history) but does not overwrite the newer state: a late-arriving CRM sync cannot re-grant
    consent that a customer withdrew since. With `skip_unchanged`, a decision that would not change
    the current status is not recorded at all, which makes a replayed upsert a no-op.
    """
    if not decisions:
        return []
    for d in decisions:
        _check_decision(d.channel, d.action, d.source)
    customer_ids = sorted({d.customer_id for d in decisions})
    states = {
        (s.customer_id, s.channel): s
        for s in CustomerConsent.objects.select_for_update()
        .filter(customer_id__in=customer_ids)
        .order_by("customer_id", "channel")
    }
    records: list[ConsentRecord] = []
    new_states: dict[tuple[int, str], CustomerConsent] = {}
    changed_states: dict[tuple[int, str], CustomerConsent] = {}
    unsubscribed: list[dict[str, Any]] = []
    for d in sorted(decisions, key=lambda d: d.occurred_at):
        status = _STATUS_AFTER[ConsentAction(d.action)]
        key = (d.customer_id, d.channel)
        state = states.get(key)
        previous = state.status if state else None
        if skip_unchanged and previous == status:
            continue
        records.append(
            ConsentRecord(
                customer_id=d.customer_id,
                channel=d.channel,
                action=d.action,
                source=d.source[:64],
                ip=d.ip,
                occurred_at=d.occurred_at,
                note=d.note[:255],
            )
        )
        if state is None:
            state = CustomerConsent(
                customer_id=d.customer_id,
                channel=d.channel,
                status=status,
                source=d.source[:64],
                changed_at=d.occurred_at,
            )
            states[key] = new_states[key] = state
        elif d.occurred_at >= state.changed_at:
            state.status, state.source, state.changed_at = status, d.source[:64], d.occurred_at
            if key not in new_states:
                changed_states[key] = state
        else:
            status = state.status
        if previous != ConsentStatus.WITHDRAWN and status == ConsentStatus.WITHDRAWN:
            unsubscribed.append(
                {
                    "external_id": d.external_id,
                    "channel": d.channel,
                    "source": d.source[:64],
                    "at": d.occurred_at.isoformat(),
                }
            )
    created = ConsentRecord.objects.bulk_create(records, batch_size=2000)
    CustomerConsent.objects.bulk_create(list(new_states.values()), batch_size=2000)
    if changed_states:
        CustomerConsent.objects.bulk_update(
            list(changed_states.values()), ["status", "source", "changed_at"], batch_size=2000
        )
    if unsubscribed:
        publish_many(topic="customer.unsubscribed", payloads=unsubscribed)
    announce_changed(customer_id for customer_id, _ in [*new_states, *changed_states])
    return created


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
    """Append one consent decision and update the derived current state (see `record_consents`)."""
    _check_decision(channel, action, source)
    decision = ConsentDecision(
        customer_id=customer.pk,
        external_id=customer.external_id,
        channel=channel,
        action=action,
        source=source,
        occurred_at=occurred_at or timezone.now(),
        ip=ip,
        note=note,
    )
    return record_consents(decisions=[decision])[0]


_OPT_IN_SALT = "customers.double-opt-in"
DOUBLE_OPT_IN_MAX_AGE = 7 * 24 * 3600


class DoubleOptInError(ValueError):
    pass


def request_double_opt_in(*, customer: Customer, source: str, ip: str | None = None) -> str:
    """Record a pending email consent and return the signed token the confirmation link carries.

    The token names the request it confirms, so a confirmation arriving after the customer
    withdrew again cannot re-grant consent.
    """
    if not customer.email:
        raise DoubleOptInError("This customer has no email address to confirm.")
    record = record_consent(
        customer=customer, channel=Channel.EMAIL, action=ConsentAction.REQUESTED, source=source, ip=ip
    )
    return signing.dumps({"c": customer.pk, "r": record.pk}, salt=_OPT_IN_SALT, compress=True)


def confirm_double_opt_in(*, token: str, ip: str | None = None) -> ConsentRecord:
    """Grant email consent for a pending request; a second click changes nothing."""
    try:
        data = signing.loads(token, salt=_OPT_IN_SALT, max_age=DOUBLE_OPT_IN_MAX_AGE)
    except signing.SignatureExpired:
        raise DoubleOptInError("This confirmation link has expired; please sign up again.") from None
    except signing.BadSignature:
        raise DoubleOptInError("This confirmation link is not valid.") from None
    with transaction.atomic():
        customer = Customer.objects.select_for_update().filter(pk=data.get("c")).first()
        if customer is None:
            raise DoubleOptInError("This confirmation link is not valid.")
        request = ConsentRecord.objects.filter(pk=data.get("r"), customer=customer).first()
        if request is None or request.action != ConsentAction.REQUESTED:
            raise DoubleOptInError("This confirmation link is not valid.")
        later = ConsentRecord.objects.filter(
            customer=customer, channel=Channel.EMAIL, occurred_at__gte=request.occurred_at
        ).exclude(pk=request.pk)
        confirmed = later.filter(action=ConsentAction.CONFIRMED).order_by("occurred_at").first()
        if confirmed is not None:
            return confirmed
        if later.filter(action=ConsentAction.WITHDRAWN).exists():
            raise DoubleOptInError("Consent was withdrawn after this request; please sign up again.")
        return record_consent(
            customer=customer,
            channel=Channel.EMAIL,
            action=ConsentAction.CONFIRMED,
            source="double_opt_in",
            ip=ip,
            note=f"confirms request #{request.pk}",
        )


# --- suppression ---------------------------------------------------------------------------------


def suppress_address(
    *, address: str, reason: str, channel: str = Channel.EMAIL, detail: str = ""
) -> Suppression:
    """Never message this address again on this channel (idempotent).

    An erasure outranks every other reason: it is the one entry `lift_suppression` keeps.
    """
    if reason not in SuppressionReason.values:
        raise ValueError(f"Unknown suppression reason {reason!r}")
    entry, created = Suppression.objects.get_or_create(
        channel=channel,
        address_hash=email_digest(address),
        defaults={"reason": reason, "detail": detail[:255]},
    )
    if not created and reason == SuppressionReason.ERASED and entry.reason != reason:
        entry.reason, entry.detail = reason, detail[:255]
        entry.save(update_fields=["reason", "detail"])
    return entry


def lift_suppression(*, address: str, channel: str = Channel.EMAIL) -> int:
    """Remove an unsubscribe/manual suppression (e.g. the customer re-subscribed); erasures stay."""
    deleted, _ = (
        Suppression.objects.filter(channel=channel, address_hash=email_digest(address))
        .exclude(reason=SuppressionReason.ERASED)
        .delete()
    )
    return deleted


# --- bulk upsert of customers --------------------------------------------------------------------
