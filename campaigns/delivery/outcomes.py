"""What a provider's answer means for a ledger row: sent, retry later, or give up."""

from __future__ import annotations

from dataclasses import dataclass, field

SENT = "sent"
RETRY = "retry"
FAILED = "failed"


@dataclass
class Outcome:
    kind: str
    detail: str = ""
    provider_message_id: str = ""
    #: Push subscriptions the provider says are gone (404/410): deactivated in bulk after the chunk.
    dead_subscriptions: list[int] = field(default_factory=list)

    @classmethod
    def sent(cls, provider_message_id: str = "", dead: list[int] | None = None) -> Outcome:
        return cls(SENT, "", provider_message_id, dead or [])

    @classmethod
    def retry(cls, detail: str, dead: list[int] | None = None) -> Outcome:
        return cls(RETRY, detail[:200], "", dead or [])

    @classmethod
    def failed(cls, detail: str, dead: list[int] | None = None) -> Outcome:
        return cls(FAILED, detail[:200], "", dead or [])


def from_http_status(status: int, text: str = "") -> str:
    """HTTP providers: 2xx sent; 429, 408 and 5xx are worth retrying; other 4xx will not improve."""
    if 200 <= status < 300:
        return SENT
    if status in (408, 425, 429) or status >= 500:
        return RETRY
    return FAILED
