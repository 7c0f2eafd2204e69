"""The work on an email's HTML that is done once per template, not once per customer.

Inlining CSS (css-inline), finding the links and writing the text part cost about a
millisecond per message, as much as rendering. None of it depends on the customer's
values -- only on the HTML around them -- so it is done on the HTML *skeleton* of
``environment.RenderedHtml`` (values as markers) and kept in a cache keyed by that
skeleton: a campaign's messages share a handful of skeletons (a loyalty member or not,
four or three recommendations...). Per message, :meth:`BodyPlan.html_for` and
:meth:`BodyPlan.text_for` put the values, the tracked links, the preheader and the open
pixel into the plan.

When the CSS *does* depend on the customer -- a value printed inside ``<style>``, or into
a ``class``, ``id`` or ``style`` attribute, or into any attribute while the stylesheet
has attribute selectors, or a value the inliner did not carry over intact -- the
skeleton is not used: the finished HTML is planned for that message alone, which gives
the same result at the per-message price. So does a part the sandbox had to render
without markers (see ``environment.py``).
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import css_inline

from campaigns.rendering.environment import RenderedHtml
from campaigns.rendering.errors import TemplateError
from campaigns.rendering.links import LinkTracker, is_dangerous_url
from campaigns.rendering.markers import MARK_OPEN, split_values
from campaigns.rendering.plaintext import TextPlan, text_plan

#: Placeholders of the per-message pieces that are not template values.
PREHEADER = "\ue002"
OPEN_PIXEL = "\ue003"
#: Every private-use character the plans use; scrubbed from finished HTML planned as it is.
_PLAN_CHARACTERS = re.compile("[\ue000-\ue006]")

_INLINER = css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True, load_remote_stylesheets=False)
_BODY_OPEN = re.compile(r"<body\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_STYLE_BLOCK = re.compile(r"<style\b[^>]*>(.*?)</style\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[a-zA-Z][^\s/>]*((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>")
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
_ANCHOR_OR_COMMENT = re.compile(
    r"<!--.*?(?:-->|\Z)|<a(?=[\s/>])(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE | re.DOTALL
)
_HREF = re.compile(r"""\shref\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+)""", re.IGNORECASE)
_SLOTS = re.compile("(\ue000[0-9]+\ue001|\ue002|\ue003)")

_HIDDEN_PREHEADER = (
    '<div style="display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;'
    f'overflow:hidden;mso-hide:all;" aria-hidden="true">{PREHEADER}</div>'
)
#: Filler after the preheader so inbox previews do not run on into the body's first words.
_PREVIEW_FILLER = "&#847;&zwnj;&nbsp;"


@dataclass(frozen=True)
class Href:
    """An ``href`` attribute of an ``<a>`` tag: its value as written, split at the values."""

    parts: tuple[str | int, ...]


class _Slot(str):
    """The preheader or open-pixel placeholder in a plan (a ``str`` that is not text)."""


_PREHEADER_SLOT = _Slot("preheader")
_PIXEL_SLOT = _Slot("open pixel")

#: A piece of an HTML plan: literal HTML, a value number, an href, or a slot.
HtmlPiece = str | int | Href


@dataclass(frozen=True)
class BodyPlan:
    html: tuple[HtmlPiece, ...]
    #: ``None`` when the marketer wrote the text part.
    text: TextPlan | None

    def html_for(
        self, escaped: Sequence[str], *, preheader: str | None, pixel_url: str | None, links: LinkTracker
    ) -> str:
        """The HTML part for one message; tracks its links in ``links``."""
        out: list[str] = []
        append = out.append
        for piece in self.html:
            kind = type(piece)
            if kind is str:
                append(piece)  # type: ignore[arg-type]
            elif kind is int:
                append(escaped[piece])  # type: ignore[index]
            elif kind is Href:
                append(_href_attribute(piece.parts, escaped, links))  # type: ignore[union-attr]
            elif piece is _PREHEADER_SLOT:
                append(_preheader_html(preheader))
            else:
                append(_pixel_html(pixel_url))
        return "".join(out)

    def text_for(self, raw: Sequence[str], links: LinkTracker) -> str:
        """The generated text part for one message (after ``html_for``, so links share indexes)."""
        if self.text is None:
            raise ValueError("this plan has no text part: the marketer wrote one")
        return self.text.assemble(raw, links.text_target)


def _href_attribute(parts: tuple[str | int, ...], escaped: Sequence[str], links: LinkTracker) -> str:
    value = "".join(escaped[part] if type(part) is int else part for part in parts)  # type: ignore[misc]
    url = html_lib.unescape(value).strip()
    if is_dangerous_url(url):
        return ""  # the link loses its href and stays as text
    tracked = links.track(url)
    if tracked is None:
        return f' href="{value.replace(chr(34), "&quot;")}"'
    return f' href="{html_lib.escape(tracked, quote=True)}"'


def _preheader_html(preheader: str | None) -> str:
    if not preheader:
        return ""
    return html_lib.escape(preheader, quote=False) + _PREVIEW_FILLER * max(0, 90 - len(preheader))


def _pixel_html(url: str | None) -> str:
    if not url:
        return ""
    return (
        f'<img src="{html_lib.escape(url, quote=True)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0;">'
    )


# ---------------------------------------------------------------------------------------
# Planning


def plan_body(rendered: RenderedHtml, *, preheader: bool, text: bool) -> tuple[BodyPlan, RenderedHtml]:
    """The plan for one rendered HTML part, and the values to fill it with.

    ``preheader``/``text``: whether the message has a preheader, and whether the text part
    is to be generated. Cached per skeleton when the CSS cannot depend on the values.
    """
    if rendered.marked:
        plan = _cached_plan(rendered.skeleton, preheader, text)
        if plan is not None:
            return plan, rendered
    finished = RenderedHtml(_PLAN_CHARACTERS.sub("\ufffd", rendered.html), (), (), marked=False)
    plan = _plan(finished.skeleton, preheader, text)
    if plan is None:  # pragma: no cover -- finished HTML has no markers to lose
        raise TemplateError.single("html", "the HTML could not be prepared for sending", reason="invalid")
    return plan, finished


@functools.lru_cache(maxsize=256)
def _cached_plan(skeleton: str, preheader: bool, text: bool) -> BodyPlan | None:
    """``None`` when this skeleton cannot stand for its messages (see the module docstring)."""
    if not markers_are_inert(skeleton):
        return None
    return _plan(skeleton, preheader, text)


def markers_are_inert(skeleton: str) -> bool:
    """Would the CSS apply the same whatever the values? (See the module docstring.)"""
    if MARK_OPEN not in skeleton:
        return True
    stylesheets = _STYLE_BLOCK.findall(skeleton)
    if any(MARK_OPEN in css for css in stylesheets):
        return False
    attribute_selectors = any("[" in css for css in stylesheets)
    for tag in _TAG.finditer(skeleton):
        attributes = tag.group(1)
        if MARK_OPEN not in attributes:
            continue
        if attribute_selectors:
            return False
        for name, value in _ATTRIBUTE.findall(attributes):
            if MARK_OPEN in name:
                return False
            if MARK_OPEN in value and (
                value[:1] not in ("'", '"') or name.lower() in ("class", "id", "style")
            ):
                return False
    return True


def inline_css(markup: str) -> str:
    try:
        return _INLINER.inline(markup)
    except (css_inline.InlineError, ValueError) as exc:
        raise TemplateError.single("html", f"the CSS could not be inlined: {exc}", reason="invalid") from None


def _plan(markup: str, preheader: bool, text: bool) -> BodyPlan | None:
    if preheader:
        match = _BODY_OPEN.search(markup)
        at = match.end() if match else 0
        markup = markup[:at] + _HIDDEN_PREHEADER + markup[at:]
    inlined = inline_css(markup)
    if Counter(_SLOTS.findall(inlined)) != Counter(_SLOTS.findall(markup)):
        return None  # the inliner dropped or copied a value: plan the finished HTML instead
    generated_text = text_plan(inlined) if text else None
    closes = list(_BODY_CLOSE.finditer(inlined))
    at = closes[-1].start() if closes else len(inlined)
    inlined = inlined[:at] + OPEN_PIXEL + inlined[at:]
    return BodyPlan(html=_html_pieces(inlined), text=generated_text)


def _html_pieces(markup: str) -> tuple[HtmlPiece, ...]:
    pieces: list[HtmlPiece] = []
    cursor = 0
    for match in _ANCHOR_OR_COMMENT.finditer(markup):
        tag = match.group(0)
        if tag.startswith("<!--"):
            continue
        href = _HREF.search(tag)
        if href is None:
            continue
        value = href.group(1)
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        _literal_pieces(markup[cursor : match.start() + href.start()], pieces)
        pieces.append(Href(tuple(split_values(value))))
        cursor = match.start() + href.end()
    _literal_pieces(markup[cursor:], pieces)
    return tuple(pieces)


def _literal_pieces(markup: str, pieces: list[HtmlPiece]) -> None:
    for chunk in _SLOTS.split(markup):
        if not chunk:
            continue
        if chunk == PREHEADER:
            pieces.append(_PREHEADER_SLOT)
        elif chunk == OPEN_PIXEL:
            pieces.append(_PIXEL_SLOT)
        elif chunk[0] == MARK_OPEN:
            pieces.append(int(chunk[1:-1]))
        elif pieces and type(pieces[-1]) is str:
            pieces[-1] += chunk  # type: ignore[operator]
        else:
            pieces.append(chunk)
