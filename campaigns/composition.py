"""Where campaigns meet the rendering package: one message per ledger row, ready for a provider.

`campaigns.rendering` renders marketers' templates under limits and builds the MIME bytes;
this module supplies what only the campaign side knows -- the send's tracking URLs (signed
tokens), the ledger key its deterministic Message-ID is derived from, the sender identity and
UTM parameters -- and collects each message's destination URLs so the chunk can store them
(one upsert per chunk) before anything is sent.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from campaigns.delivery.email import PrebuiltEmail
from campaigns.models import Campaign, Variant
from campaigns.rendering import (
    DEFAULT_LIMITS,
    EmailTemplates,
    IsolatedRenderer,
    Mailbox,
    PushTemplates,
    RenderLimits,
    TemplateError,
    Tracking,
    build_email,
    render_email,
    render_message_parts,
    render_parts,
    render_push,
)

__all__ = ["ComposedMessage", "Composer", "TemplateError", "isolated_renderer", "ledger_key"]

EMAIL_PARTS = ("subject", "preheader", "html", "text")
PUSH_PARTS = ("push_title", "push_body", "push_url", "push_icon")
#: Headers the rendering package sets that an ESP (anymail) needs passed on as extra headers.
ESP_HEADERS = ("Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "X-Reachly-Campaign")

_isolated: IsolatedRenderer | None = None
_isolated_lock = threading.Lock()


def isolated_renderer() -> IsolatedRenderer:
    """One child renderer per process, for templates seen for the first time (previews, test sends).

    A template a marketer just typed may hit a C-level step the in-process limits cannot stop;
    the child is killed at its deadline instead. Campaign sends render in process (the template
    was previewed and compiled before launch, and a chunk that kills its worker is handled by
    the ledger's kill counter).
    """
    global _isolated
    with _isolated_lock:
        if _isolated is None:
            _isolated = IsolatedRenderer()
        return _isolated


def ledger_key(*, run_id: int, variant_id: int | None, customer_id: int, channel: str) -> str:
    """The send ledger's unique key as text: the Message-ID is derived from it, so a row sent
    again after a crash carries the same Message-ID and receivers can drop the copy."""
    return f"{run_id}:{variant_id or 0}:{customer_id}:{channel}"


def email_templates(variant_parts: Mapping[str, str]) -> EmailTemplates:
    return EmailTemplates(
        subject=variant_parts.get("subject", ""),
        html=variant_parts.get("html", ""),
        text=variant_parts.get("text") or None,
        preheader=variant_parts.get("preheader") or None,
    )


def push_templates(variant_parts: Mapping[str, str]) -> PushTemplates:
    return PushTemplates(
        title=variant_parts.get("push_title", ""),
        body=variant_parts.get("push_body", ""),
        url=variant_parts.get("push_url") or None,
        icon=variant_parts.get("push_icon") or None,
    )


@dataclass
class ComposedMessage:
    send_id: int
    message: Any  # a Django EmailMessage for email, a dict payload for push
    destinations: list[str] = field(default_factory=list)
    message_id: str = ""


def _mailbox(address: str) -> Mailbox:
    name, email = parseaddr(address)
    return Mailbox(email or address, name or None)


class Composer:
    """Builds the messages of one campaign; holds what is the same for every message of a chunk."""

    @staticmethod
    def site_url() -> str:
        return settings.SITE_URL.rstrip("/")

    def __init__(
        self, campaign: Campaign, *, limits: RenderLimits = DEFAULT_LIMITS, renderer=render_message_parts
    ):
        from campaigns.tracking import tokens

        self._tokens = tokens
        self.campaign = campaign
        self.limits = limits
        self.renderer = renderer
        self.site = self.site_url()
        self.tokens = tokens.TokenMaker()
        self.sender = (
            Mailbox(campaign.from_email, campaign.from_name or None)
            if campaign.from_email
            else _mailbox(settings.DEFAULT_FROM_EMAIL)
        )
        self.reply_to = Mailbox(campaign.reply_to) if campaign.reply_to else None
        self.domain = self.sender.address.rpartition("@")[2] or (urlsplit(self.site).hostname or "localhost")
        self.utm = {
            "utm_source": campaign.utm_source,
            "utm_medium": campaign.utm_medium or campaign.channel,
            "utm_campaign": campaign.utm_campaign or f"campaign-{campaign.pk}",
        }
        self.extra_headers = {"X-Reachly-Campaign": str(campaign.pk)}

    # Public tracking URLs ---------------------------------------------------------------
    def unsubscribe_url(self, send_id: int) -> str:
        return f"{self.site}/t/u/{self.tokens.make(self._tokens.UNSUBSCRIBE, send_id)}/"

    def open_pixel_url(self, send_id: int) -> str:
        return f"{self.site}/t/o/{self.tokens.make(self._tokens.OPEN, send_id)}.gif"

    def click_url(self, send_id: int, destination: str) -> str:
        token = self.tokens.make(self._tokens.CLICK, send_id, self._tokens.url_digest(destination))
        return f"{self.site}/t/c/{token}/"

    def push_click_url(self, send_id: int, destination: str) -> str:
        token = self.tokens.make(self._tokens.PUSH_CLICK, send_id, self._tokens.url_digest(destination))
        return f"{self.site}/t/p/{token}/"

    # Messages ---------------------------------------------------------------------------
    def email(
        self,
        *,
        send_id: int,
        key: str,
        variant: Variant,
        context: Mapping[str, Any],
        to: str,
        to_name: str | None = None,
        tracked: bool = True,
        subject_prefix: str = "",
    ) -> ComposedMessage:
        """Render and build one email; raises TemplateError (the template) or ValueError (bad data)."""
        templates = email_templates(variant.parts())
        if subject_prefix:
            templates = EmailTemplates(
                subject=subject_prefix + templates.subject,
                html=templates.html,
                text=templates.text,
                preheader=templates.preheader,
            )
        rendered = render_email(templates, context, limits=self.limits, renderer=self.renderer)
        unsubscribe = context["links"]["unsubscribe_url"]
        preferences = context["links"].get("preferences_url")
        tracking = Tracking(
            rewrite_link=(lambda url, _index: self.click_url(send_id, url)) if tracked else None,
            open_pixel_url=self.open_pixel_url(send_id) if tracked else None,
            utm=self.utm,
            untracked_urls=(preferences,) if preferences else (),
        )
        built = build_email(
            rendered,
            sender=self.sender,
            recipient=Mailbox(to, to_name),
            ledger_key=key,
            message_id_domain=self.domain,
            unsubscribe_url=unsubscribe,
            tracking=tracking,
            reply_to=self.reply_to,
            headers=self.extra_headers,
            require_https=settings.TRACKING_REQUIRE_HTTPS,
        )
        message = PrebuiltEmail(
            raw=built.raw,
            envelope_from=self.sender.address,
            from_email=built.headers.get("From", self.sender.address),
            to=to,
            subject=built.subject,
            text=built.text,
            html=built.html,
            headers={name: built.headers[name] for name in ESP_HEADERS if name in built.headers},
            reply_to=self.reply_to.address if self.reply_to else "",
        )
        return ComposedMessage(send_id, message, list(built.links) if tracked else [], built.message_id)

    def push(
        self, *, send_id: int, key: str, variant: Variant, context: Mapping[str, Any], tracked: bool = True
    ) -> ComposedMessage:
        destinations: list[str] = []

        def track(url: str, _index: int) -> str:
            destinations.append(url)
            return self.push_click_url(send_id, url) if tracked else url

        payload = render_push(
            push_templates(variant.parts()),
            context,
            limits=self.limits,
            renderer=self.renderer,
            rewrite_link=track,
            utm=self.utm,
        )
        if "url" not in payload:  # no click URL written: open the shop, still through tracking
            payload["url"] = track(self.site, 0)
        from campaigns.rendering import message_id

        payload["message_id"] = message_id(key, self.domain)
        return ComposedMessage(send_id, payload, destinations if tracked else [], payload["message_id"])


def render_preview_parts(
    *, parts: Mapping[str, str], context: Mapping[str, Any], isolated: bool = True
) -> dict:
    """Render any parts as they are written (no layout processing), for push and partial previews."""
    if isolated:
        rendered = isolated_renderer()(dict(parts), context, limits=DEFAULT_LIMITS)
        return {k: (v.html if hasattr(v, "html") else v) for k, v in rendered.items()}
    return render_parts(dict(parts), context)
