"""Launch, pause, resume and cancel from the admin: a confirmation page, then the lifecycle service.

The admin never changes a status itself; every transition goes through the same services as the
API and is audited.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from access.services import audit_request
from campaigns.services import lifecycle
from campaigns.services.launch import LaunchError, launch_campaign

TRANSITIONS = {
    "launch": ("Launch", lambda c, reason: launch_campaign(campaign=c), "launched"),
    "pause": (
        "Pause",
        lambda c, reason: lifecycle.pause_campaign(campaign=c, reason=reason or "Paused by a marketer"),
        "paused",
    ),
    "resume": ("Resume", lambda c, reason: lifecycle.resume_campaign(campaign=c), "resumed"),
    "cancel": (
        "Cancel",
        lambda c, reason: lifecycle.cancel_campaign(campaign=c, reason=reason or "Cancelled by a marketer"),
        "cancelled",
    ),
}
#: Which buttons a status offers.
OFFERED = {
    "draft": ("launch", "cancel"),
    "scheduled": ("pause", "cancel"),
    "sending": ("pause", "cancel"),
    "paused": ("resume", "cancel"),
    "sent": (),
    "cancelled": (),
}


class TransitionPages:
    """The confirmation page and the POST that runs the transition (mixed into CampaignAdmin)."""

    def transition_view(self, request, pk: int, verb: str):
        if verb not in TRANSITIONS:
            raise PermissionDenied
        campaign = self._campaign(request, pk, change=True)
        label, run, past = TRANSITIONS[verb]
        change_url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
        if request.method == "POST":
            try:
                campaign = run(campaign, request.POST.get("reason", "").strip()[:200])
            except LaunchError as exc:
                for field, problems in exc.errors.items():
                    for problem in problems:
                        messages.error(request, f"{field}: {problem}")
                return HttpResponseRedirect(change_url)
            except lifecycle.TransitionError as exc:
                messages.error(request, str(exc))
                return HttpResponseRedirect(change_url)
            audit_request(
                request, action=f"campaign.{past}", target=campaign, details={"status": campaign.status}
            )
            messages.success(request, f"“{campaign}” {past}: now {campaign.get_status_display().lower()}.")
            return HttpResponseRedirect(change_url)
        audience = None
        if verb == "launch":
            from segments.selectors import audience as audience_of

            audience = audience_of(
                include=campaign.include_segments.all(), exclude=campaign.exclude_segments.all()
            ).count()
        return TemplateResponse(
            request,
            "admin/campaigns/confirm_transition.html",
            self._context(
                request, campaign, f"{label} “{campaign}”?", verb=verb, label=label, audience=audience
            ),
        )
