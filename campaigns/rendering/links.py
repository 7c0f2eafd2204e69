"""Links in a message: UTM parameters, click-tracking rewrites, unsafe schemes.

Rewriting is done on the rendered HTML with the standard library's HTML tokenizer to
find each ``<a href>`` exactly where it is, and only the attribute value is replaced, so
the marketer's markup (and Outlook's conditional comments) come through byte for byte.

What is rewritten: ``http``/``https`` links in ``<a href>``, in order of appearance; the
index passed to the caller's ``rewrite_link`` is that order. Left alone: ``mailto:``,
``tel:``, ``#anchors``, relative links, links inside HTML comments (Outlook-only VML
buttons), and every URL the caller lists as untracked -- the unsubscribe and preferences
links must keep working when tracking is down, and a mail scanner following tracked links
must not land on an unsubscribe. ``javascript:``, ``vbscript:`` and ``data:`` hrefs are
dropped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: ``rewrite_link(destination_url, link_index) -> tracked_url``
LinkRewriter = Callable[[str, int], str]

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
_DANGEROUS_SCHEMES = ("javascript:", "vbscript:", "data:")


def is_web_url(url: str) -> bool:
    return url[:8].lower().startswith(("http://", "https://"))


def with_query(url: str, params: Mapping[str, object], *, keep_existing: bool = False) -> str:
    """Add query parameters to an http(s) URL, encoding them; other URLs come back unchanged.

    With ``keep_existing`` a parameter already in the URL wins (UTM values a marketer
    typed by hand are not overwritten by the campaign defaults).
    """
    if not is_web_url(url):
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {key for key, _ in query}
    changes = {str(k): "" if v is None else str(v) for k, v in params.items() if v is not None}
    if keep_existing:
        query.extend((k, v) for k, v in changes.items() if k not in present)
    else:
        query = [(k, v) for k, v in query if k not in changes] + list(changes.items())
    return urlunsplit(parts._replace(query=urlencode(query, doseq=False)))


def with_utm(url: str, utm: Mapping[str, object] | None, *, hosts: Collection[str] | None = None) -> str:
    """Append UTM parameters (keys with or without the ``utm_`` prefix) unless already set."""
    if not utm or not is_web_url(url):
        return url
    if hosts is not None:
        host = (urlsplit(url).hostname or "").lower()
        if not any(host == h or host.endswith("." + h) for h in hosts):
            return url
    params = {}
    for key, value in utm.items():
        name = key if key.startswith("utm_") else f"utm_{key}"
        if name in UTM_KEYS and value not in (None, ""):
            params[name] = value
    return with_query(url, params, keep_existing=True)


@dataclass
class TrackedLinks:
    """Destinations in index order; ``index_of`` reuses an index for a repeated URL in text."""

    destinations: list[str] = field(default_factory=list)
    first_index: dict[str, int] = field(default_factory=dict)

    def add(self, destination: str) -> int:
        index = len(self.destinations)
        self.destinations.append(destination)
        self.first_index.setdefault(destination, index)
        return index

    def index_of(self, destination: str) -> int:
        if destination in self.first_index:
            return self.first_index[destination]
        return self.add(destination)


_HREF = re.compile(r"""(\shref\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+)""", re.IGNORECASE)


class _AnchorFinder(HTMLParser):
    """Collects (offset, raw start tag) for every ``<a>`` start tag."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[int, str]] = []
        self._line_starts = [0]
        for match in re.finditer("\n", source):
            self._line_starts.append(match.end())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            line, column = self.getpos()
            raw = self.get_starttag_text() or ""
            self.anchors.append((self._line_starts[line - 1] + column, raw))

    handle_startendtag = handle_starttag


def rewrite_html_links(
    markup: str,
    *,
    rewrite_link: LinkRewriter | None,
    links: TrackedLinks,
    utm: Mapping[str, object] | None = None,
    utm_hosts: Collection[str] | None = None,
    untracked: Collection[str] = (),
) -> str:
    """Apply UTM parameters and the caller's click tracking to every ``<a href>``."""
    finder = _AnchorFinder(markup)
    finder.feed(markup)
    finder.close()
    untracked_set = set(untracked)
    out: list[str] = []
    cursor = 0
    for offset, raw in finder.anchors:
        if markup[offset : offset + len(raw)] != raw:  # the tokenizer and we disagree: leave it
            continue
        match = _HREF.search(raw)
        if not match:
            continue
        quoted = match.group(2)
        value = quoted[1:-1] if quoted[:1] in "\"'" else quoted
        url = html.unescape(value).strip()
        new_url = _rewrite_one(url, rewrite_link, links, utm, utm_hosts, untracked_set)
        if new_url is None:
            continue
        new_attr = "" if new_url == "" else f'{match.group(1)}"{html.escape(new_url, quote=True)}"'
        new_raw = raw[: match.start()] + new_attr + raw[match.end() :]
        out.append(markup[cursor:offset])
        out.append(new_raw)
        cursor = offset + len(raw)
    out.append(markup[cursor:])
    return "".join(out)


def _rewrite_one(
    url: str,
    rewrite_link: LinkRewriter | None,
    links: TrackedLinks,
    utm: Mapping[str, object] | None,
    utm_hosts: Collection[str] | None,
    untracked: set[str],
) -> str | None:
    """New href value, ``""`` to drop the attribute, ``None`` to leave the tag untouched."""
    compact = re.sub(r"[\s\x00-\x1f]", "", url).lower()
    if compact.startswith(_DANGEROUS_SCHEMES):
        return ""
    if not is_web_url(url) or url in untracked:
        return None
    destination = with_utm(url, utm, hosts=utm_hosts)
    if rewrite_link is None:
        links.add(destination)
        return destination if destination != url else None
    return rewrite_link(destination, links.add(destination))


_TEXT_URL = re.compile(r"""https?://[^\s<>"')\]]+""", re.IGNORECASE)


def rewrite_text_links(
    text: str,
    *,
    rewrite_link: LinkRewriter | None,
    links: TrackedLinks,
    utm: Mapping[str, object] | None = None,
    utm_hosts: Collection[str] | None = None,
    untracked: Collection[str] = (),
) -> str:
    """The text part's counterpart: a URL already tracked in the HTML reuses its index."""
    untracked_set = set(untracked)

    def replace(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(".,;:!?")
        tail = match.group(0)[len(url) :]
        if url in untracked_set:
            return match.group(0)
        destination = with_utm(url, utm, hosts=utm_hosts)
        index = links.index_of(destination)
        tracked = rewrite_link(destination, index) if rewrite_link else destination
        return tracked + tail

    return _TEXT_URL.sub(replace, text)
