"""Push notifications: render the four push templates and fit them to the platforms.

Titles and bodies are single lines (whitespace collapsed) cut to what a lock screen
shows, on a word boundary when one is near, never inside an emoji or accented letter,
with an ellipsis. The click URL goes through the same UTM and click-tracking steps as an
email link. The payload must also fit a Web Push message (4 KB after encryption), so
the body is cut further if the whole JSON would not.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campaigns.rendering.context import check_message_context
from campaigns.rendering.environment import DEFAULT_LIMITS, one_line, render_message_parts
from campaigns.rendering.errors import TemplateError, TemplateProblem
from campaigns.rendering.limits import RenderLimits
from campaigns.rendering.links import LinkRewriter, LinkTracker, is_web_url
from campaigns.rendering.message import PartRenderer

ELLIPSIS = "\u2026"


@dataclass(frozen=True)
class PushTemplates:
    title: str
    body: str
    url: str | None = None
    icon: str | None = None


@dataclass(frozen=True)
class PushLimits:
    """What lock screens show (Android cuts titles near 65 and bodies near 240 characters)
    and what a Web Push message carries (4,096 bytes encrypted; keep the JSON under 3,072)."""

    title_chars: int = 65
    body_chars: int = 240
    url_chars: int = 2_048
    payload_bytes: int = 3_072


def _joins_previous(char: str) -> bool:
    """Characters that belong to the one before: accents, ZWJ, variation selectors, skin tones."""
    code = ord(char)
    return (
        unicodedata.combining(char) != 0
        or code in (0x200D, 0xFE0E, 0xFE0F)
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
    )


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def truncate_text(text: str, limit: int) -> str:
    """At most ``limit`` characters, ellipsis included, cut between whole characters as a
    reader sees them (an accent, a skin tone, a family emoji or a flag stays whole)."""
    if len(text) <= limit:
        return text
    cut = max(limit - 1, 0)
    while cut > 0 and (_joins_previous(text[cut]) or text[cut - 1] == "\u200d"):
        cut -= 1
    flags = 0  # a flag is two regional indicators: never keep half of one
    while cut - flags > 0 and _is_regional_indicator(text[cut - flags - 1]):
        flags += 1
    if flags % 2:
        cut -= 1
    head = text[:cut]
    space = head.rfind(" ")
    if space >= max(cut - 20, 1):
        head = head[:space]
    return head.rstrip(" ,.;:-\u2013\u2014") + ELLIPSIS


def _web_url(field: str, value: str, limits: PushLimits) -> str | None:
    url = value.strip()
    if not url:
        return None
    if not is_web_url(url) or any(c.isspace() for c in url):
        raise TemplateError.single(field, f"{url[:80]!r} is not an http(s) link", reason="invalid")
    if len(url) > limits.url_chars:
        raise TemplateError.single(
            field, f"the link is longer than {limits.url_chars} characters", reason="invalid"
        )
    return url


def render_push(
    templates: PushTemplates,
    context: Mapping[str, Any],
    *,
    limits: RenderLimits = DEFAULT_LIMITS,
    push_limits: PushLimits = PushLimits(),  # noqa: B008 -- frozen, shared safely
    renderer: PartRenderer = render_message_parts,
    rewrite_link: LinkRewriter | None = None,
    utm: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The payload ``{"title", "body"[, "url"][, "icon"]}`` for one customer.

    The click URL gets the UTM parameters, then ``rewrite_link(url, 0)``.
    """
    check_message_context(context)
    parts = {"push_title": templates.title, "push_body": templates.body}
    if templates.url and templates.url.strip():
        parts["push_url"] = templates.url
    if templates.icon and templates.icon.strip():
        parts["push_icon"] = templates.icon
    rendered = {part: str(text) for part, text in renderer(parts, context, limits=limits).items()}

    title = one_line(rendered["push_title"])
    body = one_line(rendered["push_body"])
    problems = []
    if not title:
        problems.append(
            TemplateProblem("push_title", None, "the push title is empty for this customer", "empty")
        )
    if not body:
        problems.append(
            TemplateProblem("push_body", None, "the push body is empty for this customer", "empty")
        )
    if problems:
        raise TemplateError(problems)

    payload = {
        "title": truncate_text(title, push_limits.title_chars),
        "body": truncate_text(body, push_limits.body_chars),
    }
    url = _web_url("push_url", rendered.get("push_url", ""), push_limits)
    if url:
        tracked = LinkTracker(rewrite_link=rewrite_link, utm=utm).track(url)
        payload["url"] = tracked or url
    icon = _web_url("push_icon", rendered.get("push_icon", ""), push_limits)
    if icon:
        payload["icon"] = icon

    budget = push_limits.payload_bytes
    while len(json.dumps(payload, ensure_ascii=False).encode("utf-8")) > budget:
        over = len(json.dumps(payload, ensure_ascii=False).encode("utf-8")) - budget
        shorter = max(len(payload["body"]) - max(over // 2, 8), 0)
        if shorter < 8:
            raise TemplateError.single(
                "push_url", "the push payload does not fit even with the body cut", reason="output_limit"
            )
        payload["body"] = truncate_text(payload["body"], shorter)
    return payload
