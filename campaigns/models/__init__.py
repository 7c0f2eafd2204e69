"""Campaigns, their message variants, runs, the send ledger and what flows back from each send.

The send ledger (`Send`) is the system of record for delivery: every decision about a customer
(queued, held out, suppressed, capped, deferred, sent, failed) is a row state with a reason, and
workers coordinate only through it (leases, attempt and kill counters), never through Redis.
"""

from campaigns.models.authoring import (
    MESSAGE_PARTS,
    Campaign,
    CampaignStatus,
    CapOverflow,
    Channel,
    MessageTemplate,
    ScheduleKind,
    TriggerKind,
    Variant,
)
from campaigns.models.ledger import (
    CLAIMABLE_STATES,
    FINAL_STATES,
    Arm,
    CampaignRun,
    RunState,
    Send,
    SendState,
)
from campaigns.models.tracking import (
    Conversion,
    DeliveryWebhookEvent,
    ProcessingCursor,
    TestSend,
    TrackedLink,
    TrackingEvent,
    TrackingKind,
)

__all__ = [
    "Channel",
    "CampaignStatus",
    "ScheduleKind",
    "TriggerKind",
    "CapOverflow",
    "Campaign",
    "MessageTemplate",
    "MESSAGE_PARTS",
    "Variant",
    "RunState",
    "CampaignRun",
    "SendState",
    "CLAIMABLE_STATES",
    "FINAL_STATES",
    "Arm",
    "Send",
    "TrackedLink",
    "TrackingKind",
    "TrackingEvent",
    "Conversion",
    "ProcessingCursor",
    "DeliveryWebhookEvent",
    "TestSend",
]
