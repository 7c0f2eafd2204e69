"""Publishing to the outbox. Call inside the transaction that makes the change."""

from __future__ import annotations

from typing import Any

from webhooks.models import TOPICS, OutboxMessage

_KNOWN_TOPICS = {name for name, _ in TOPICS}


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
