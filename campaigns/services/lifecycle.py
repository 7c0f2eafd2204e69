"""A campaign's status and the only legal ways to change it.

Every change is a conditional UPDATE (`WHERE status IN (legal sources)`), so two people
pausing and cancelling at once, or a worker finishing while someone pauses, cannot both win:
the database decides, and the loser gets a TransitionError it can show.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.models import (
    CLAIMABLE_STATES,
    Campaign,
    CampaignRun,
    CampaignStatus,
    RunState,
    Send,
    SendState,
)

S = CampaignStatus

#: target status -> statuses it may be reached from
LEGAL_SOURCES: dict[str, tuple[str, ...]] = {
    S.SCHEDULED: (S.DRAFT, S.PAUSED),
    S.SENDING: (S.DRAFT, S.SCHEDULED, S.PAUSED),
    S.PAUSED: (S.SCHEDULED, S.SENDING),
    S.SENT: (S.SENDING,),
    S.CANCELLED: (S.DRAFT, S.SCHEDULED, S.SENDING, S.PAUSED),
}

#: Statuses in which workers may send the campaign's queued rows.
SENDABLE = (S.SCHEDULED, S.SENDING)
#: Statuses in which a campaign's content and settings may still be edited.
EDITABLE = (S.DRAFT, S.SCHEDULED, S.PAUSED)


class TransitionError(ValueError):
    pass


def move(*, campaign: Campaign, to: str, reason: str = "", extra: dict | None = None) -> Campaign:
    """Move `campaign` to status `to` if its current status allows; refresh the instance."""
    sources = LEGAL_SOURCES.get(to)
    if sources is None:
        raise TransitionError(f"No campaign can be moved to {to!r}")
    changes = {"status": to, "status_reason": reason[:255], "updated_at": timezone.now(), **(extra or {})}
    moved = Campaign.objects.filter(pk=campaign.pk, status__in=sources).update(**changes)
    if not moved:
        current = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
        raise TransitionError(
            f"A {current or 'missing'} campaign cannot become {to}; allowed from: {', '.join(sources)}"
        )
    campaign.refresh_from_db()
    return campaign


def pause_campaign(*, campaign: Campaign, reason: str = "Paused by a marketer") -> Campaign:
    """Stop sending after the chunks in flight; queued rows wait, nothing is dropped."""
    return move(campaign=campaign, to=S.PAUSED, reason=reason)


def resume_campaign(*, campaign: Campaign) -> Campaign:
    """Back to sending (a one-off whose ledger exists) or to scheduled (armed or not yet due)."""
    has_open_run = CampaignRun.objects.filter(
        campaign=campaign, state__in=[RunState.WRITING, RunState.READY]
    ).exists()
    target = S.SENDING if has_open_run and not campaign.is_ongoing else S.SCHEDULED
    campaign = move(campaign=campaign, to=target, reason="")
    from campaigns.services.sending import enqueue_senders

    transaction.on_commit(lambda: enqueue_senders(campaign_id=campaign.pk))
    return campaign


@transaction.atomic
def cancel_campaign(*, campaign: Campaign, reason: str = "Cancelled by a marketer") -> Campaign:
    """Stop for good: rows not yet sent end as failed with the reason, runs are closed."""
    campaign = move(campaign=campaign, to=S.CANCELLED, reason=reason, extra={"finished_at": timezone.now()})
    now = timezone.now()
    Send.objects.filter(campaign=campaign, state__in=CLAIMABLE_STATES).update(
        state=SendState.FAILED, reason=f"campaign cancelled: {reason}"[:255], updated_at=now
    )
    CampaignRun.objects.filter(campaign=campaign).filter(
        Q(state__in=[RunState.PENDING, RunState.WRITING, RunState.READY])
    ).update(state=RunState.CANCELLED, finished_at=now)
    return campaign
