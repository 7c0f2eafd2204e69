"""Bounce and complaint callbacks from providers: signed, timestamped and processed once.

Two doors lead here. ESPs behind django-anymail post to anymail's own webhook views, which
check their signatures and emit normalised `tracking` signals (`on_anymail_tracking`). Any
other relay (an SMTP provider's feedback loop, the generic HTTP push provider) posts our own
format to `/t/webhooks/delivery/`: a JSON event signed with HMAC-SHA256 over "<timestamp>.<body>"
in `X-Reachly-Signature: t=<unix time>,v1=<hex>`. Events older than five minutes are refused,
and every event id is recorded, so a captured request replayed later changes nothing.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import IntegrityError, transaction

from campaigns.delivery.push import verify_signature
from campaigns.models import DeliveryWebhookEvent, Send
from campaigns.tracking import engagement

logger = logging.getLogger(__name__)

BOUNCE = "bounce"
COMPLAINT = "complaint"
KINDS = (BOUNCE, COMPLAINT, "delivered", "deferred")


class WebhookRejected(Exception):  # noqa: N818
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _first_time(provider: str, event_id: str, kind: str) -> bool:
    try:
        with transaction.atomic():
            DeliveryWebhookEvent.objects.create(
                provider=provider[:32], event_id=event_id[:191], kind=kind[:16]
            )
    except IntegrityError:
        return False
    return True


def _send_for(*, send_id=None, message_id: str = "") -> Send | None:
    """The send a callback is about: by our send id when the provider echoes it, else by Message-ID."""
    if send_id in (None, ""):
        if not message_id:
            return None
        return Send.objects.select_related("customer").filter(message_id=message_id.strip()).first()
    try:
        send_id = int(send_id) if send_id is not None else None
    except (TypeError, ValueError):
        return None
    if send_id is None:
        return None
    return Send.objects.select_related("customer").filter(pk=send_id).first()


@transaction.atomic
def apply_event(
    *, provider: str, event_id: str, kind: str, send: Send | None, permanent: bool, detail: str
) -> str:
    if not _first_time(provider, event_id, kind):
        raise WebhookRejected(409, "This event id was already processed.")
    if send is None:
        return "unknown message"
    if kind == BOUNCE:
        engagement.record_bounce(send=send, permanent=permanent, detail=detail)
    elif kind == COMPLAINT:
        engagement.record_complaint(send=send, detail=detail)
    return "processed"


def handle_signed_delivery_event(*, body: bytes, signature: str) -> dict:
    """Verify, parse and apply one event in our own format; raises WebhookRejected."""
    secret = getattr(settings, "DELIVERY_WEBHOOK_SECRET", "")
    if not secret:
        raise WebhookRejected(503, "Delivery webhooks are not configured (DELIVERY_WEBHOOK_SECRET).")
    tolerance = getattr(settings, "DELIVERY_WEBHOOK_TOLERANCE_SECONDS", 300)
    if not signature or not verify_signature(secret, signature, body, tolerance=tolerance):
        raise WebhookRejected(401, "Missing, invalid or expired signature.")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "The body is not JSON.") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "The body must be a JSON object.")
    event_id, kind = payload.get("id"), payload.get("type")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 191:
        raise WebhookRejected(400, "`id` must be a non-empty string of at most 191 characters.")
    if kind not in KINDS:
        raise WebhookRejected(400, f"`type` must be one of {', '.join(KINDS)}.")
    send = _send_for(send_id=payload.get("send_id"), message_id=str(payload.get("message_id") or ""))
    status = apply_event(
        provider="signed",
        event_id=event_id,
        kind=kind,
        send=send,
        permanent=bool(payload.get("permanent", True)),
        detail=str(payload.get("detail") or "")[:200],
    )
    return {"status": status}


def on_anymail_tracking(sender, event, esp_name, **kwargs) -> None:
    """anymail's normalised tracking events: bounces, rejects and complaints suppress the address."""
    kinds = {"bounced": BOUNCE, "rejected": BOUNCE, "complained": COMPLAINT}
    kind = kinds.get(event.event_type)
    if kind is None:
        return
    metadata = getattr(event, "metadata", None) or {}
    send = _send_for(send_id=metadata.get("send_id"))
    if send is None and event.message_id:
        send = (
            Send.objects.select_related("customer").filter(provider_message_id=str(event.message_id)).first()
        )
    event_id = event.event_id or f"{event.message_id}:{event.event_type}:{event.recipient}"
    try:
        apply_event(
            provider=f"anymail.{esp_name}",
            event_id=str(event_id),
            kind=kind,
            send=send,
            permanent=event.event_type != "bounced" or (event.reject_reason or "bounced") != "other",
            detail=str(event.description or event.mta_response or event.reject_reason or "")[:200],
        )
    except WebhookRejected:
        logger.info("anymail %s event %s already processed", esp_name, event_id)
