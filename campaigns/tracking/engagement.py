"""Recording what a send caused: opens, clicks, unsubscribes, bounces and complaints.

Opens are unreliable since Apple's Mail Privacy Protection fetches every image through its
proxies when mail arrives, and security gateways fetch (and click) everything to scan it.
Such opens are recorded but flagged `machine` with a reason, so the report shows human and
machine opens apart and experiments use human opens only.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.models import (
    Campaign,
    CampaignStatus,
    Send,
    SendState,
    TrackedLink,
    TrackingEvent,
    TrackingKind,
)
from campaigns.services.lifecycle import TransitionError, pause_campaign
from customers.models import ConsentAction, SuppressionReason
from customers.services import record_consent, suppress_address

#: Apple's own network: Mail Privacy Protection prefetches come from here (and relays it runs).
APPLE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)

#: User agents of mail security gateways, link checkers and previewers, not people.
_SCANNER_AGENTS = re.compile(
    r"barracuda|mimecast|proofpoint|ironport|symantec|messagelabs|trend ?micro|forcepoint|sophos|zscaler|"
    r"fortiguard|fortinet|bitdefender|trustwave|cloudmark|spamtitan|agari|safelinks|"
    r"python-requests|python-urllib|aiohttp|curl/|wget/|go-http-client|java/|okhttp|libwww|httpclient|"
    r"headlesschrome|phantomjs|bot\b|crawler|spider|slackbot|facebookexternalhit|whatsapp|telegrambot|"
    r"discordbot|linkedinbot|twitterbot|skypeuripreview|preview",
    re.IGNORECASE,
)


def machine_reason(*, user_agent: str, ip: str | None, sent_at: datetime | None, now: datetime) -> str:
    """Why this fetch was a machine's, or "" for a person (as far as anyone can tell)."""
    agent = (user_agent or "").strip()
    if not agent:
        return "no user agent"
    if agent == "Mozilla/5.0":
        return "apple mail privacy protection"
    if ip:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            address = None
        if address is not None and any(address in network for network in APPLE_NETWORKS):
            return "apple mail privacy protection"
    if _SCANNER_AGENTS.search(agent):
        return "security scanner or link preview"
    fast = getattr(settings, "CAMPAIGN_MACHINE_OPEN_SECONDS", 5)
    if sent_at is not None and (now - sent_at) < timedelta(seconds=fast):
        return f"within {fast} s of delivery"
    return ""


def _event(send: Send, kind: str, *, now: datetime, machine: str = "", **fields) -> TrackingEvent:
    return TrackingEvent.objects.create(
        send=send,
        campaign_id=send.campaign_id,
        variant_id=send.variant_id,
        customer_id=send.customer_id,
        kind=kind,
        machine=bool(machine),
        machine_reason=machine[:64],
        occurred_at=now,
        **fields,
    )


def _sent_send(send_id: int) -> Send | None:
    return Send.objects.filter(pk=send_id, state=SendState.SENT).first()


def record_open(*, send_id: int, user_agent: str = "", ip: str | None = None) -> TrackingEvent | None:
    send = _sent_send(send_id)
    if send is None:
        return None
    now = timezone.now()
    reason = machine_reason(user_agent=user_agent, ip=ip, sent_at=send.sent_at, now=now)
    return _event(send, TrackingKind.OPEN, now=now, machine=reason, user_agent=(user_agent or "")[:255])


def resolve_click(
    *, send_id: int, link_hash: str, user_agent: str = "", ip: str | None = None, push: bool = False
) -> str | None:
    """The stored destination of a tracked link (recording the click), or None: never a URL from the request."""
    send = _sent_send(send_id)
    if send is None or send.variant_id is None:
        return None
    link = TrackedLink.objects.filter(variant_id=send.variant_id, url_hash=link_hash).first()
    if link is None:
        return None
    now = timezone.now()
    reason = machine_reason(user_agent=user_agent, ip=ip, sent_at=send.sent_at, now=now)
    _event(
        send,
        TrackingKind.CLICK,
        now=now,
        machine=reason,
        link=link,
        detail="push" if push else "",
        user_agent=(user_agent or "")[:255],
    )
    return link.url


@transaction.atomic
def unsubscribe(*, send_id: int, source: str = "unsubscribe_link", ip: str | None = None) -> bool:
    """Withdraw the customer's consent on the campaign's channel; a repeat does nothing more."""
    send = Send.objects.select_related("customer").filter(pk=send_id).first()
    if send is None:
        return False
    if TrackingEvent.objects.filter(send=send, kind=TrackingKind.UNSUBSCRIBE).exists():
        return True
    record_consent(
        customer=send.customer,
        channel=send.channel,
        action=ConsentAction.WITHDRAWN,
        source=source,
        ip=ip,
        note=f"campaign {send.campaign_id}, send {send.pk}",
    )
    _event(send, TrackingKind.UNSUBSCRIBE, now=timezone.now(), detail=source[:255])
    return True


def record_bounce(*, send: Send, permanent: bool, detail: str = "") -> TrackingEvent:
    """A hard bounce puts the address on the suppression list; a soft one is only recorded."""
    now = timezone.now()
    if permanent and send.customer.email:
        suppress_address(address=send.customer.email, reason=SuppressionReason.BOUNCED, detail=detail[:255])
    return _event(
        send, TrackingKind.BOUNCE, now=now, detail=(("hard: " if permanent else "soft: ") + detail)[:255]
    )


def record_complaint(*, send: Send, detail: str = "") -> TrackingEvent:
    """A spam complaint suppresses the address, withdraws consent and may pause the campaign."""
    now = timezone.now()
    customer = send.customer
    if customer.email:
        suppress_address(address=customer.email, reason=SuppressionReason.COMPLAINT, detail=detail[:255])
    record_consent(
        customer=customer, channel=send.channel, action=ConsentAction.WITHDRAWN, source="spam_complaint"
    )
    event = _event(send, TrackingKind.COMPLAINT, now=now, detail=detail[:255])
    check_complaint_rate(campaign_id=send.campaign_id)
    return event


def complaint_rate(campaign_id: int) -> tuple[int, int]:
    sent = Send.objects.filter(campaign_id=campaign_id, state=SendState.SENT).count()
    complaints = (
        TrackingEvent.objects.filter(campaign_id=campaign_id, kind=TrackingKind.COMPLAINT)
        .values("send_id")
        .distinct()
        .count()
    )
    return complaints, sent


def check_complaint_rate(*, campaign_id: int) -> bool:
    """Pause a campaign whose complaint rate passes the limit (0.3 % by default), saying why."""
    limit = Decimal(str(getattr(settings, "CAMPAIGN_COMPLAINT_RATE_LIMIT", 0.003)))
    minimum = getattr(settings, "CAMPAIGN_COMPLAINT_MIN_SENT", 200)
    complaints, sent = complaint_rate(campaign_id)
    if sent < minimum or sent == 0 or Decimal(complaints) / Decimal(sent) <= limit:
        return False
    campaign = Campaign.objects.get(pk=campaign_id)
    if campaign.status not in (CampaignStatus.SENDING, CampaignStatus.SCHEDULED):
        return False
    rate = Decimal(complaints) * 100 / Decimal(sent)
    reason = (
        f"Paused automatically: complaint rate {rate:.2f} % ({complaints} of {sent:,} sent) "
        f"is above {limit * 100:.1f} %"
    )
    try:
        pause_campaign(campaign=campaign, reason=reason)
    except TransitionError:
        return False
    return True
