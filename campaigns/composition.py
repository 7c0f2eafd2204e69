"""Where campaigns meet the rendering package: one message per send, ready for a provider.

The rendering package renders marketers' templates under limits and builds valid MIME; this
module supplies what only the campaign side knows -- the send's tracking URLs (signed tokens),
its deterministic Message-ID, the sender identity and UTM parameters -- and collects the
destination URLs so the chunk can store them (one upsert per chunk) before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formataddr
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from campaigns.models import Campaign, Channel, Variant
from campaigns.tracking import tokens

try:  # the rendering package, once merged (branch `rendering`)
    from campaigns.rendering import TemplateError, build_email_message, push_payload, render, text_from_html
except ImportError:  # pragma: no cover - until the merge
    from campaigns.interim_rendering import (
        TemplateError,
        build_email_message,
        push_payload,
        render,
        text_from_html,
    )

__all__ = [
    "ComposedMessage",
    "Composer",
    "TemplateError",
    "build_email_message",
    "render_preview",
    "text_from_html",
]

EMAIL_PARTS = ("subject", "preheader", "html", "text")
PUSH_PARTS = ("push_title", "push_body", "push_url", "push_icon")


def parts_for(channel: str, variant_parts: Mapping[str, str]) -> dict[str, str]:
    names = EMAIL_PARTS if channel == Channel.EMAIL else PUSH_PARTS
    return {name: variant_parts.get(name, "") or "" for name in names if variant_parts.get(name)}


def render_preview(*, parts: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    """Render arbitrary parts for the preview API and the admin (raises TemplateError)."""
    return render({k: v for k, v in parts.items() if v}, context)


def message_id_for(send_id: int, domain: str) -> str:
    """The same row always gets the same Message-ID, so a resend after a crash can be deduplicated."""
    return f"<reachly.send.{send_id}@{domain}>"


def send_id_from_message_id(message_id: str) -> int | None:
    value = (message_id or "").strip().strip("<>")
    local, _, _domain = value.partition("@")
    prefix = "reachly.send."
    if local.startswith(prefix) and local[len(prefix) :].isdigit():
        return int(local[len(prefix) :])
    return None


@dataclass
class ComposedMessage:
    send_id: int
    message: Any  # a Django EmailMessage for email, a dict payload for push
    destinations: list[str] = field(default_factory=list)
    message_id: str = ""


class Composer:
    """Builds the messages of one campaign; holds per-chunk state (token key, site URL)."""

    @staticmethod
    def site_url() -> str:
        return settings.SITE_URL.rstrip("/")

    def __init__(self, campaign: Campaign):
        self.campaign = campaign
        self.site = self.site_url()
        self.tokens = tokens.TokenMaker()
        self.from_email = self._from_address()
        self.domain = self.from_email.rpartition("@")[2].rstrip(">") or (
            urlsplit(self.site).hostname or "localhost"
        )
        self.utm = {
            "utm_source": campaign.utm_source,
            "utm_medium": campaign.utm_medium or campaign.channel,
            "utm_campaign": campaign.utm_campaign or f"campaign-{campaign.pk}",
        }

    def _from_address(self) -> str:
        campaign = self.campaign
        if campaign.from_email:
            return (
                formataddr((campaign.from_name, campaign.from_email))
                if campaign.from_name
                else campaign.from_email
            )
        return settings.DEFAULT_FROM_EMAIL

    # Public tracking URLs ---------------------------------------------------------------
    def unsubscribe_url(self, send_id: int) -> str:
        return f"{self.site}/t/u/{self.tokens.make(tokens.UNSUBSCRIBE, send_id)}/"

    def open_pixel_url(self, send_id: int) -> str:
        return f"{self.site}/t/o/{self.tokens.make(tokens.OPEN, send_id)}.gif"

    def click_url(self, send_id: int, destination: str) -> str:
        return f"{self.site}/t/c/{self.tokens.make(tokens.CLICK, send_id, tokens.url_digest(destination))}/"

    def push_click_url(self, send_id: int, destination: str) -> str:
        return (
            f"{self.site}/t/p/{self.tokens.make(tokens.PUSH_CLICK, send_id, tokens.url_digest(destination))}/"
        )

    # Messages ---------------------------------------------------------------------------
    def email(
        self, *, send_id: int, variant: Variant, context: Mapping[str, Any], to: str, connection=None
    ) -> ComposedMessage:
        rendered = render(parts_for(Channel.EMAIL, variant.parts()), context)
        unsubscribe = context["links"]["unsubscribe_url"]
        identifier = message_id_for(send_id, self.domain)
        message, destinations = build_email_message(
            rendered=rendered,
            from_email=self.from_email,
            to=to,
            reply_to=self.campaign.reply_to,
            headers={
                "Message-ID": identifier,
                "X-Reachly-Campaign": str(self.campaign.pk),
            },
            rewrite_link=lambda url, _index: self.click_url(send_id, url),
            untracked=(unsubscribe,),
            utm=self.utm,
            open_pixel_url=self.open_pixel_url(send_id),
            unsubscribe_url=unsubscribe,
            connection=connection,
        )
        return ComposedMessage(send_id, message, list(destinations), identifier)

    def push(self, *, send_id: int, variant: Variant, context: Mapping[str, Any]) -> ComposedMessage:
        rendered = render(parts_for(Channel.PUSH, variant.parts()), context)
        destination = rendered.get("push_url") or self.site
        payload = push_payload(rendered=rendered, click_url=self.push_click_url(send_id, destination))
        payload["message_id"] = message_id_for(send_id, self.domain)
        return ComposedMessage(send_id, payload, [destination], payload["message_id"])
