"""Outbound webhooks: publishing to the outbox, fanning out to endpoints, signed delivery with retries.

Publish inside the transaction that makes the change. `dispatch_due` (beat, every 30 s) fans new
outbox messages out into one delivery per subscribed endpoint and sends the deliveries that are
due. A dispatcher claims rows with `SELECT … FOR UPDATE SKIP LOCKED` and a lease (`locked_until`),
so two dispatchers never send the same delivery at once; a crashed one's lease simply expires.
Retries wait on `next_attempt_at` in the database, never on a broker countdown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webhooks.models import TOPICS, OutboxMessage, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

_KNOWN_TOPICS = {name for name, _ in TOPICS}
SIGNATURE_HEADER = "X-Reachly-Signature"
EVENT_ID_HEADER = "X-Reachly-Event-Id"
TOPIC_HEADER = "X-Reachly-Topic"
DELIVERY_ID_HEADER = "X-Reachly-Delivery"
LEASE = timedelta(minutes=2)
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 6 * 3600


def publish(*, topic: str, payload: dict[str, Any]) -> OutboxMessage:
    """Record that `topic` happened; deliveries are fanned out by `webhooks.dispatch_due`.

    Payloads carry ids and states, not personal data beyond what the receiving CRM already owns.
    """
    if topic not in _KNOWN_TOPICS:
        raise ValueError(f"Unknown webhook topic {topic!r}")
    return OutboxMessage.objects.create(topic=topic, payload=payload)


def publish_many(*, topic: str, payloads: list[dict[str, Any]]) -> int:
    if topic not in _KNOWN_TOPICS:
        raise ValueError(f"Unknown webhook topic {topic!r}")
    OutboxMessage.objects.bulk_create(
        [OutboxMessage(topic=topic, payload=p) for p in payloads], batch_size=2000
    )
    return len(payloads)


# --- signing ---------------------------------------------------------------------------------------


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """`t=<ts>,v1=<hex>`: HMAC-SHA256 over `<ts>.<body>`, so a replayed body with an old stamp fails."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    *, secret: str, header: str, body: bytes, tolerance_seconds: int = 300, now: float | None = None
) -> bool:
    """What a receiver does (docs/api.md shows the same in a few lines): check the MAC and the age."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret=secret, timestamp=timestamp, body=body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def body_for(message: OutboxMessage) -> bytes:
    envelope = {
        "id": f"evt_{message.pk}",
        "topic": message.topic,
        "created_at": message.created_at.isoformat(),
        "data": message.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True, default=str).encode("utf-8")


def backoff(attempts: int) -> timedelta:
    """30 s, 60 s, 2 min, 4 min … capped at 6 h: quick recovery from blips, patience with outages."""
    return timedelta(seconds=min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS))


# --- fan-out and dispatch --------------------------------------------------------------------------


def fan_out(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Turn new outbox messages into deliveries for the active endpoints that want their topic."""
    now = now or timezone.now()
    created = 0
    while True:
        with transaction.atomic():
            messages = list(
                OutboxMessage.objects.select_for_update(skip_locked=True)
                .filter(fanned_out_at__isnull=True)
                .order_by("created_at", "pk")[:batch_size]
            )
            if not messages:
                return created
            endpoints = list(WebhookEndpoint.objects.filter(active=True))
            deliveries = [
                WebhookDelivery(endpoint=endpoint, message=message, next_attempt_at=now)
                for message in messages
                for endpoint in endpoints
                if endpoint.wants(message.topic)
            ]
            WebhookDelivery.objects.bulk_create(deliveries, batch_size=2000, ignore_conflicts=True)
            OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]).update(fanned_out_at=now)
            created += len(deliveries)
        if len(messages) < batch_size:
            return created


def claim_due(*, now: datetime | None = None, limit: int = 100, worker: str = "") -> list[int]:
    """Lease up to `limit` due deliveries to this dispatcher; rows another one holds are skipped."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
            .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(locked_until=now + LEASE)
    return ids


def deliver(*, delivery_id: int, now: datetime | None = None, session: requests.Session | None = None) -> str:
    """POST one delivery and record the outcome; returns the new status."""
    delivery = WebhookDelivery.objects.select_related("endpoint", "message").get(pk=delivery_id)
    if delivery.status != WebhookDelivery.Status.PENDING:
        return delivery.status
    endpoint, message = delivery.endpoint, delivery.message
    body = body_for(message)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Reachly-Webhooks/1",
        SIGNATURE_HEADER: sign(secret=endpoint.secret, timestamp=timestamp, body=body),
        EVENT_ID_HEADER: f"evt_{message.pk}",
        TOPIC_HEADER: message.topic,
        DELIVERY_ID_HEADER: str(delivery.pk),
    }
    status_code: int | None = None
    error = ""
    try:
        response = (session or requests).post(
            endpoint.url,
            data=body,
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:200]}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    now = now or timezone.now()
    attempts = delivery.attempts + 1
    update: dict[str, Any] = {"attempts": attempts, "locked_until": None, "last_status_code": status_code}
    if not error:
        update.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now, last_error="")
    elif attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        update.update(
            status=WebhookDelivery.Status.FAILED,
            last_error=f"Gave up after {attempts} attempts. {error}"[:500],
        )
    else:
        update.update(next_attempt_at=now + backoff(attempts), last_error=error[:500])
    WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING).update(**update)
    return update.get("status", WebhookDelivery.Status.PENDING)


def dispatch_due(
    *, now: datetime | None = None, limit: int = 500, batch_size: int = 100, time_budget_seconds: float = 25.0
) -> dict[str, int]:
    """Fan out, then send what is due within a time budget shorter than the beat interval."""
    started = time.monotonic()
    fanned = fan_out(now=now)
    counts = {"fanned_out": fanned, "delivered": 0, "retrying": 0, "failed": 0}
    sent = 0
    with requests.Session() as session:
        while sent < limit and time.monotonic() - started < time_budget_seconds:
            ids = claim_due(now=now, limit=min(batch_size, limit - sent))
            if not ids:
                break
            for delivery_id in ids:
                status = deliver(delivery_id=delivery_id, now=now, session=session)
                key = {"delivered": "delivered", "failed": "failed"}.get(status, "retrying")
                counts[key] += 1
                sent += 1
    return counts


def retry_delivery(*, delivery: WebhookDelivery) -> None:
    """Staff asked to try a failed delivery again: it starts over with a fresh attempt budget."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), locked_until=None
    )


def prune_outbox(*, older_than: timedelta = timedelta(days=30), batch_size: int = 10_000) -> int:
    """Delete old outbox messages that were fanned out and have no delivery still pending.

    Their deliveries go with them (cascade); the outbox is a queue, not an archive.
    """
    cutoff = timezone.now() - older_than
    removed = 0
    while True:
        ids = list(
            OutboxMessage.objects.filter(fanned_out_at__lt=cutoff)
            .exclude(deliveries__status=WebhookDelivery.Status.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return removed
        OutboxMessage.objects.filter(pk__in=ids).delete()
        removed += len(ids)
