"""Push through Web Push (VAPID, pywebpush) and a generic HTTP provider (JSON + HMAC signature).

One `requests.Session` per chunk keeps connections to each push service alive. A customer may
have several subscriptions (phone, laptop): the message counts as sent when at least one takes
it. 404 and 410 mean the subscription is gone for good: it is deactivated, never retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import requests
from django.conf import settings

from campaigns.delivery.outcomes import FAILED, RETRY, SENT, Outcome, from_http_status
from customers.models import PushSubscription

GONE = (404, 410)


@dataclass(frozen=True)
class Subscription:
    """The fields of a push subscription a send needs, read for the chunk in one query."""

    id: int
    kind: str
    endpoint: str
    p256dh: str
    auth: str
    token: str


def subscriptions_for(customer_ids: Iterable[int]) -> dict[int, list[Subscription]]:
    found: dict[int, list[Subscription]] = {}
    rows = PushSubscription.objects.filter(customer_id__in=list(customer_ids), active=True).values_list(
        "customer_id", "id", "kind", "endpoint", "p256dh", "auth", "token"
    )
    for customer_id, *fields in rows:
        found.setdefault(customer_id, []).append(Subscription(*fields))
    return found


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the receiver checks time and body."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: str, header: str, body: bytes, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """Check a `signature_header` value: right key, right body, not older than `tolerance` seconds."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature_header(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class PushDelivery:
    def __init__(self):
        self.session = requests.Session()
        self.timeout = getattr(settings, "PUSH_TIMEOUT_SECONDS", 10)

    def __enter__(self) -> PushDelivery:
        return self

    def __exit__(self, *exc_info) -> None:
        self.session.close()

    def deliver(self, payload: dict, subscriptions: list[Subscription]) -> Outcome:
        if not subscriptions:
            return Outcome.failed("no active push subscription")
        results: list[tuple[str, str]] = []
        dead: list[int] = []
        for subscription in subscriptions:
            try:
                if subscription.kind == PushSubscription.Kind.HTTP:
                    status, text = self._http(payload, subscription)
                else:
                    status, text = self._webpush(payload, subscription)
            except requests.RequestException as exc:
                results.append((RETRY, f"{type(exc).__name__}"))
                continue
            except Exception as exc:  # noqa: BLE001 - bad keys etc.: this subscription cannot work
                results.append((FAILED, f"{type(exc).__name__}: {exc}"[:120]))
                continue
            if status in GONE:
                dead.append(subscription.id)
                results.append((FAILED, f"subscription gone (HTTP {status})"))
            else:
                results.append((from_http_status(status), f"HTTP {status} {text[:80]}".strip()))
        kinds = [kind for kind, _ in results]
        detail = "; ".join(text for _, text in results)
        if SENT in kinds:
            return Outcome.sent(dead=dead)
        if RETRY in kinds:
            return Outcome.retry(detail, dead=dead)
        return Outcome.failed(detail, dead=dead)

    def _http(self, payload: dict, subscription: Subscription) -> tuple[int, str]:
        body = json.dumps({"to": subscription.token, **payload}, separators=(",", ":"), default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Reachly-Signature": signature_header(settings.PUSH_HTTP_SECRET, int(time.time()), body),
        }
        response = self.session.post(subscription.endpoint, data=body, headers=headers, timeout=self.timeout)
        return response.status_code, response.text or ""

    def _webpush(self, payload: dict, subscription: Subscription) -> tuple[int, str]:
        from pywebpush import WebPushException, webpush

        try:
            response = webpush(
                subscription_info={
                    "endpoint": subscription.endpoint,
                    "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
                },
                data=json.dumps(payload, separators=(",", ":"), default=str),
                vapid_private_key=settings.WEBPUSH_VAPID_PRIVATE_KEY,
                vapid_claims={"sub": settings.WEBPUSH_VAPID_SUBJECT},
                timeout=self.timeout,
                ttl=getattr(settings, "WEBPUSH_TTL_SECONDS", 24 * 3600),
                requests_session=self.session,
            )
        except WebPushException as exc:
            if exc.response is not None:
                return exc.response.status_code, exc.response.text or ""
            raise
        return response.status_code, ""


def deactivate(subscription_ids: list[int], reason: str = "gone (404/410 from the push service)") -> int:
    if not subscription_ids:
        return 0
    return PushSubscription.objects.filter(pk__in=subscription_ids).update(active=False, last_error=reason)
