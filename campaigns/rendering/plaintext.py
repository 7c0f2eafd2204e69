"""The text part of an email, written from its HTML when the marketer did not write one.

Mail clients that show text, spam filters that compare the two parts and screen readers
all read it, so it has to be readable, not a tag-stripped blob: headings are underlined,
lists keep their bullets and numbers, a link reads ``label (url)``, an image link followed
by a text link to the same page (a product card) gives the URL once, and nothing hidden
(the preheader, ``<head>``, ``<style>``, ``display:none``) leaks in.

It works on the HTML *skeleton* of ``environment.RenderedHtml`` -- values as markers --
once per skeleton, and returns a :class:`TextPlan` that ``assemble`` fills per message:
values, tracked link URLs, and heading underlines as long as the heading turned out.

Hand-written on a regular-expression tokenizer: ``html.parser`` costs about 1.5 ms per
email (too slow per message, and this runs per skeleton anyway), the maintained
converters are GPL (html2text) or not among the pinned dependencies, and email HTML
needs only this much.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from campaigns.rendering.markers import split_values

_TOKEN = re.compile(
    r"""
      <!--.*?(?:-->|\Z)                                    # comment (and Outlook's conditionals)
    | <![^>]*>                                             # doctype, <![if !mso]>, <![endif]>
    | <\?[^>]*>
    | </(?P<end>[a-zA-Z][^\s/>]*)[^>]*>                    # end tag
    | <(?P<start>[a-zA-Z][^\s/>]*)(?P<attrs>(?:[^>"']|"[^"]*"|'[^']*')*)>   # start tag
    | (?P<text>[^<]+|<)
    """,
    re.DOTALL | re.VERBOSE,
)
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
_SKIPPED = frozenset({"head", "title", "style", "script", "noscript", "template", "svg"})
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)
_BLOCKS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "center",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "main",
        "nav",
        "p",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
        "ol",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "pre",
    ]
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|mso-hide\s*:\s*all", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\n\f\v]+")

_PARAGRAPH = "\x00P"
_LINE = "\x00L"
_BULLET = "\x00M"  # a list bullet: keeps its indentation
_VERBATIM = "\x00V"  # text inside <pre>: keeps its spaces
#: Placeholders in the generated text: a link ``\ue004K\ue005`` and a heading underline
#: ``\ue006`` + character on its own line.
_LINK = re.compile("\ue004([0-9]+)\ue005")
_UNDERLINE = "\ue006"
_PIECE = re.compile("(\ue000[0-9]+\ue001|\ue004[0-9]+\ue005|\ue006.)")


@dataclass(frozen=True)
class TextLink:
    #: The ``href`` as written in the HTML (entities included), split at the values.
    href: tuple[str | int, ...]
    #: The link's text (or its images' alt text), split at the values.
    label: tuple[str | int, ...]


@dataclass(frozen=True)
class Underline:
    character: str


#: A piece of a text plan: text, a value number, a link, or a heading underline.
TextPiece = str | int | TextLink | Underline


@dataclass(frozen=True)
class TextPlan:
    pieces: tuple[TextPiece, ...]

    def assemble(self, raw_values: Sequence[str], link_target: Callable[[str], tuple[str, str]]) -> str:
        """The text part for one message.

        ``link_target(href)`` answers ``(kind, shown)`` for an href with its values in:
        kind ``web`` (shown: the URL the customer should follow), ``mailto`` (shown: the
        address) or ``other`` (only the label is written).
        """
        out: list[str] = []
        for piece in self.pieces:
            if type(piece) is str:
                out.append(piece)
            elif type(piece) is int:
                out.append(" ".join(raw_values[piece].split()))
            elif type(piece) is TextLink:
                out.append(_link_text(piece, raw_values, link_target))
            else:  # an underline, on the line after its heading
                before = "".join(out)
                heading = before[: before.rfind("\n")].rpartition("\n")[2]
                out.append(piece.character * len(heading.strip()))  # type: ignore[union-attr]
        return "".join(out)


def _fill(parts: tuple[str | int, ...], values: Sequence[str]) -> str:
    return "".join(values[part] if type(part) is int else part for part in parts)  # type: ignore[misc]


def _link_text(
    link: TextLink, raw_values: Sequence[str], link_target: Callable[[str], tuple[str, str]]
) -> str:
    label = " ".join(_fill(link.label, raw_values).split())
    url = html.unescape(_fill(link.href, raw_values)).strip()
    kind, shown = link_target(url)
    if kind == "other":
        return label
    if not label or label in (url, shown) or label.rstrip("/") == url.rstrip("/"):
        return shown
    if kind == "mailto" and label == shown:
        return shown
    return f"{label} ({shown})"


class _TextWriter:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.stack: list[str] = []
        self.hidden_depth = 0  # >0 while inside a skipped or hidden element
        self.lists: list[list[int | None]] = []  # per open list: [counter, or None for bullets]
        self.link: tuple[str, list[str], list[str]] | None = None  # (href, text parts, image alts)
        self.links: list[TextLink] = []
        self.heading_start: int | None = None
        self.pre = 0
        #: (index in out, href) of the last link that held only an image: a product card's
        #: picture and name usually link to the same page, and the text part needs it once.
        self.image_link: tuple[int, str] | None = None

    def feed(self, markup: str) -> None:
        position = 0
        length = len(markup)
        while position < length:
            match = _TOKEN.match(markup, position)
            assert match is not None  # the last alternative matches any character
            position = match.end()
            text = match.group("text")
            if text is not None:
                self.data(text)
                continue
            start = match.group("start")
            if start is not None:
                tag = start.lower()
                if tag in _SKIPPED and not self.hidden_depth:
                    closing = re.compile(rf"</{tag}\s*>", re.IGNORECASE).search(markup, position)
                    position = closing.end() if closing else length
                    continue
                self.start_tag(tag, match.group("attrs") or "")
                continue
            end = match.group("end")
            if end is not None:
                self.end_tag(end.lower())

    # -- tags -----------------------------------------------------------------------------

    def start_tag(self, tag: str, attribute_text: str) -> None:
        self_closing = attribute_text.rstrip().endswith("/")
        wanted = tag in ("a", "img") or (
            attribute_text
            and ("hidden" in attribute_text or "display" in attribute_text or "mso-hide" in attribute_text)
        )
        attributes = _attributes(attribute_text) if wanted else {}
        if tag not in _VOID and not self_closing:
            self.stack.append(tag)
            if self.hidden_depth or _is_hidden(attributes):
                self.hidden_depth += 1
                return
        if self.hidden_depth:
            return
        if tag == "br":
            self.out.append(_LINE)
        elif tag == "hr":
            self.out.extend((_PARAGRAPH, "-" * 20, _PARAGRAPH))
        elif tag == "img":
            alt = attributes.get("alt", "").strip()
            if self.link is not None and alt:
                self.link[2].append(alt)
        elif tag == "a":
            self.link = (attributes.get("href", "").strip(), [], [])
        elif tag in ("ul", "ol"):
            self.out.append(_PARAGRAPH if not self.lists else _LINE)
            self.lists.append([1 if tag == "ol" else None])
        elif tag == "li":
            self.out.append(_LINE)
            depth = max(len(self.lists) - 1, 0)
            marker = "*"
            if self.lists and self.lists[-1][0] is not None:
                marker = f"{self.lists[-1][0]}."
                self.lists[-1][0] += 1
            self.out.append(_BULLET + "  " * depth + marker + " ")
        elif tag in _HEADINGS:
            self.out.append(_PARAGRAPH)
            self.heading_start = len(self.out)
        elif tag == "pre":
            self.out.append(_PARAGRAPH)
            self.pre += 1
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag in _BLOCKS:
            self.out.append(_PARAGRAPH)
        if self_closing and tag not in _VOID:
            self.end_tag(tag)

    def end_tag(self, tag: str) -> None:
        if tag in _VOID or tag not in self.stack:
            return
        while self.stack:
            open_tag = self.stack.pop()
            if self.hidden_depth:
                self.hidden_depth -= 1
            else:
                self._close(open_tag)
            if open_tag == tag:
                break

    def _close(self, tag: str) -> None:
        if tag == "a" and self.link is not None:
            href, parts, alts = self.link
            self.link = None
            label = " ".join("".join(parts).split()) or " ".join(alts)
            previous = self.image_link
            if label and previous and previous[1] == href and self._only_breaks_after(previous[0]):
                self.out[previous[0]] = ""
            self.image_link = None if "".join(parts).strip() else (len(self.out), href)
            self.links.append(TextLink(href=tuple(split_values(href)), label=tuple(split_values(label))))
            self.out.append(f"\ue004{len(self.links) - 1}\ue005")
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self.out.append(_PARAGRAPH if not self.lists else _LINE)
        elif tag in _HEADINGS and self.heading_start is not None:
            text = " ".join(
                "".join(p for p in self.out[self.heading_start :] if not p.startswith("\x00")).split()
            )
            del self.out[self.heading_start :]
            self.heading_start = None
            if tag in ("h1", "h2") and text:
                self.out.extend((text, _LINE, _UNDERLINE + ("=" if tag == "h1" else "-"), _PARAGRAPH))
            else:
                self.out.extend((text, _PARAGRAPH))
        elif tag == "pre":
            self.pre = max(self.pre - 1, 0)
            self.out.append(_PARAGRAPH)
        elif tag == "li":
            self.out.append(_LINE)
        elif tag in _BLOCKS:
            self.out.append(_PARAGRAPH)

    # -- text -----------------------------------------------------------------------------

    def data(self, data: str) -> None:
        if self.hidden_depth:
            return
        text = html.unescape(data)
        if not self.pre:
            text = _SPACES.sub(" ", text)
        if self.link is not None:
            self.link[1].append(text)
        else:
            self.out.append(_VERBATIM + text if self.pre else text)

    def _only_breaks_after(self, index: int) -> bool:
        return all(p in (_LINE, _PARAGRAPH) or not p.strip() for p in self.out[index + 1 :])

    def text(self) -> str:
        lines: list[str] = []
        current = ""
        pending = 0  # break owed before the next visible text: 0 none, 1 line, 2 paragraph
        for part in self.out:
            if part in (_LINE, _PARAGRAPH):
                pending = max(pending, 1 if part == _LINE else 2)
                continue
            kept = part.startswith((_BULLET, _VERBATIM))
            content = part[len(_BULLET) :] if kept else part
            if not content or (pending and not content.strip()):
                continue
            if pending:
                if current.strip() or lines:
                    lines.append(current)
                    if pending == 2:
                        lines.append("")
                current = ""
                pending = 0
            if not kept and (not current.strip() or current.endswith(" ")):
                content = content.lstrip(" ")
            current += content
        lines.append(current)
        text = "\n".join(line.rstrip() for line in lines).replace("\u200c", "").replace("\u034f", "")
        text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
        return text + "\n" if text.strip() else ""


def _attributes(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in _ATTRIBUTE.findall(text):
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        found.setdefault(name.lower(), value)
    return found


def _is_hidden(attributes: dict[str, str]) -> bool:
    return (
        "hidden" in attributes
        or attributes.get("aria-hidden", "").lower() == "true"
        or bool(_HIDDEN_STYLE.search(attributes.get("style", "")))
    )


def text_plan(markup: str) -> TextPlan:
    """Plan the text part of an HTML skeleton (or of finished HTML: a plan without values)."""
    writer = _TextWriter()
    writer.feed(markup)
    text = writer.text()
    pieces: list[TextPiece] = []
    for chunk in _PIECE.split(text):
        if not chunk:
            continue
        if chunk.startswith("\ue000"):
            pieces.append(int(chunk[1:-1]))
        elif chunk.startswith("\ue004"):
            pieces.append(writer.links[int(chunk[1:-1])])
        elif chunk.startswith(_UNDERLINE):
            pieces.append(Underline(chunk[1]))
        else:
            pieces.append(chunk)
    return TextPlan(tuple(pieces))


def _plain_link_target(url: str) -> tuple[str, str]:
    lowered = url.lower()
    if lowered.startswith(("http://", "https://")):
        return "web", url
    if lowered.startswith("mailto:"):
        return "mailto", url[7:].split("?", 1)[0]
    return "other", url


def html_to_text(markup: str) -> str:
    """Readable text for finished HTML (no values to fill, links shown as they are)."""
    return text_plan(markup).assemble((), _plain_link_target)
