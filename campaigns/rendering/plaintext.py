"""The text part of an email, written from its HTML when the marketer did not write one.

Mail clients that show text, spam filters that compare the two parts and screen readers
all read it, so it has to be readable, not a tag-stripped blob: headings are underlined,
lists keep their bullets and numbers, a link reads ``text (url)``, tables become lines,
and nothing hidden (the preheader, ``<style>``, ``<head>``) leaks in.

Written on the standard library's HTML tokenizer: the maintained converters are either
GPL (html2text) or not among the pinned dependencies, and email HTML only needs this much.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

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
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|mso-hide\s*:\s*all", re.IGNORECASE)
_PARAGRAPH = "\x00P"
_LINE = "\x00L"
_MARKER = "\x00M"  # a list bullet: keeps its indentation


class _TextWriter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.stack: list[str] = []
        self.hidden_depth = 0  # >0 while inside a skipped or hidden element
        self.lists: list[list[int | None]] = []  # per open list: [counter or None for bullets]
        self.link: tuple[str, list[str], list[str]] | None = None  # (href, text parts, image alts)
        self.heading: tuple[str, int] | None = None  # (tag, index in out where it started)
        self.pre = 0
        #: (index in out, href) of the last link that was only an image: a product card's
        #: picture and name usually link to the same page, and the text part needs it once.
        self.image_link: tuple[int, str] | None = None

    # -- tags -----------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag not in _VOID:
            self.stack.append(tag)
            if self.hidden_depth or tag in _SKIPPED or _is_hidden(attributes):
                self.hidden_depth += 1
                return
        if self.hidden_depth:
            return
        if tag == "br":
            self._emit(_LINE)
        elif tag == "hr":
            self._emit(_PARAGRAPH, "-" * 20, _PARAGRAPH)
        elif tag == "img":
            if self.link is not None and attributes.get("alt", "").strip():
                self.link[2].append(attributes["alt"].strip())
        elif tag == "a":
            self.link = (attributes.get("href", "").strip(), [], [])
        elif tag in ("ul", "ol"):
            self._emit(_PARAGRAPH if not self.lists else _LINE)
            self.lists.append([1 if tag == "ol" else None])
        elif tag == "li":
            self._emit(_LINE)
            depth = max(len(self.lists) - 1, 0)
            marker = "*"
            if self.lists and self.lists[-1][0] is not None:
                marker = f"{self.lists[-1][0]}."
                self.lists[-1][0] += 1
            self._emit(_MARKER + "  " * depth + marker + " ")
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._emit(_PARAGRAPH)
            self.heading = (tag, len(self.out))
        elif tag == "pre":
            self._emit(_PARAGRAPH)
            self.pre += 1
        elif tag in ("td", "th"):
            self._emit(" ")
        elif tag in _BLOCKS:
            self._emit(_PARAGRAPH)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or tag not in self.stack:
            return
        while self.stack:
            open_tag = self.stack.pop()
            was_hidden = self.hidden_depth > 0
            if was_hidden:
                self.hidden_depth -= 1
            else:
                self._close(open_tag)
            if open_tag == tag:
                break

    def _close(self, tag: str) -> None:
        if tag == "a" and self.link is not None:
            href, parts, alts = self.link
            self.link = None
            has_text = bool("".join(parts).strip())
            previous = self.image_link
            if has_text and previous and previous[1] == href and self._only_breaks_after(previous[0]):
                self.out[previous[0]] = ""
            self.image_link = None if has_text else (len(self.out), href)
            self._emit(_link_text(href, parts, alts))
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._emit(_PARAGRAPH if not self.lists else _LINE)
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6") and self.heading is not None:
            text = " ".join(
                "".join(p for p in self.out[self.heading[1] :] if not p.startswith("\x00")).split()
            )
            del self.out[self.heading[1] :]
            self.heading = None
            if tag in ("h1", "h2"):
                self._emit(text, _LINE, ("=" if tag == "h1" else "-") * len(text), _PARAGRAPH)
            else:
                self._emit(text, _PARAGRAPH)
        elif tag == "pre":
            self.pre = max(self.pre - 1, 0)
            self._emit(_PARAGRAPH)
        elif tag == "li":
            self._emit(_LINE)
        elif tag in _BLOCKS:
            self._emit(_PARAGRAPH)

    # -- text -----------------------------------------------------------------------------

    def handle_data(self, data: str) -> None:
        if self.hidden_depth:
            return
        text = data if self.pre else re.sub(r"[ \t\r\n\f\v]+", " ", data)
        if self.link is not None:
            self.link[1].append(text)
        else:
            self._emit(text)

    def _only_breaks_after(self, index: int) -> bool:
        return all(p in (_LINE, _PARAGRAPH) or not p.strip() for p in self.out[index + 1 :])

    def _emit(self, *parts: str) -> None:
        self.out.extend(parts)

    def text(self) -> str:
        lines: list[str] = []
        current = ""
        pending = 0  # break owed before the next visible text: 0 none, 1 line, 2 paragraph
        for part in self.out:
            if part in (_LINE, _PARAGRAPH):
                pending = max(pending, 1 if part == _LINE else 2)
                continue
            marker = part.startswith(_MARKER)
            content = part[len(_MARKER) :] if marker else part
            if not content or (pending and not content.strip()):
                continue
            if pending:
                if current.strip() or lines:
                    lines.append(current)
                    if pending == 2:
                        lines.append("")
                current = ""
                pending = 0
            if not marker and (not current.strip() or current.endswith(" ")):
                content = content.lstrip(" ")
            current += content
        lines.append(current)
        text = "\n".join(line.rstrip() for line in lines).replace("\u200c", "")
        text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
        return text + "\n" if text.strip() else ""


def _is_hidden(attributes: dict[str, str]) -> bool:
    return (
        "hidden" in attributes
        or attributes.get("aria-hidden", "").lower() == "true"
        or bool(_HIDDEN_STYLE.search(attributes.get("style", "")))
    )


def _link_text(href: str, parts: list[str], alts: list[str]) -> str:
    label = " ".join("".join(parts).split()) or " ".join(alts)
    if href.lower().startswith("mailto:"):
        target = href[7:].split("?", 1)[0]
    elif href.lower().startswith(("http://", "https://")):
        target = href
    else:
        return label
    if not label or label == target or label.rstrip("/") == target.rstrip("/"):
        return target
    return f"{label} ({target})"


def html_to_text(markup: str) -> str:
    writer = _TextWriter()
    writer.feed(markup)
    writer.close()
    return writer.text()
