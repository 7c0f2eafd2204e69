"""Links in a message: UTM parameters, click tracking, unsafe schemes.

What is tracked: ``http``/``https`` links, in order of appearance in the HTML part, then
any further ones in the text part; the index given to the caller's ``rewrite_link`` is
that order, and a URL of the text part already tracked in the HTML reuses its index (and
its tracked URL). Left alone: ``mailto:``, ``tel:``, ``#anchors``, relative links, links
inside HTML comments (Outlook-only VML buttons), and every URL the caller lists as
untracked -- the unsubscribe and preferences links must keep working when tracking is
down, and a mail scanner following tracked links must not land on an unsubscribe page.
``javascript:``, ``vbscript:`` and ``data:`` hrefs are dropped.

UTM parameters are added before tracking (the tracked URL redirects to the URL with
UTM), never overwriting a parameter the marketer wrote into the link, and not to
untracked links.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: ``rewrite_link(destination_url, link_index) -> tracked_url``
LinkRewriter = Callable[[str, int], str]

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
_DANGEROUS = re.compile(r"^(?:javascript|vbscript|data):", re.IGNORECASE)
_IGNORED_IN_SCHEME = re.compile(r"[\s\x00-\x1f]")


def is_web_url(url: str) -> bool:
    return url[:8].lower().startswith(("http://", "https://"))


def is_dangerous_url(url: str) -> bool:
    """Browsers ignore whitespace and control characters inside a scheme (``java\\tscript:``)."""
    if is_web_url(url):
        return False
    return bool(_DANGEROUS.match(_IGNORED_IN_SCHEME.sub("", url[:64])))


def with_query(url: str, params: Mapping[str, object], *, keep_existing: bool = False) -> str:
    """Add query parameters to an http(s) URL, encoding them; other URLs come back unchanged.

    With ``keep_existing`` a parameter already in the URL wins (UTM values a marketer
    typed by hand are not overwritten by the campaign's).
    """
    if not is_web_url(url):
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {key for key, _ in query}
    changes = {str(k): str(v) for k, v in params.items() if v is not None}
    if keep_existing:
        query.extend((k, v) for k, v in changes.items() if k not in present)
    else:
        query = [(k, v) for k, v in query if k not in changes] + list(changes.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_utm(url: str, utm: Mapping[str, object] | None, *, hosts: Collection[str] | None = None) -> str:
    """Append UTM parameters (keys with or without the ``utm_`` prefix) unless already set.

    ``hosts``: only links to these hosts (or their subdomains) get them; ``None``: all.
    The link's own query is kept as written; runs for every link of every message, so the
    common case (no UTM parameter in the link yet) is a string join.
    """
    if not utm or not is_web_url(url):
        return url
    if hosts is not None:
        host = (urlsplit(url).hostname or "").lower()
        if not any(host == h or host.endswith("." + h) for h in hosts):
            return url
    params, encoded = _utm_query(tuple(utm.items()))
    if not params:
        return url
    base, hash_mark, fragment = url.partition("#")
    path, question_mark, query = base.partition("?")
    if "utm_" in query:
        return with_query(url, params, keep_existing=True)
    joined = f"{query}&{encoded}" if query else encoded
    return f"{path}?{joined}{hash_mark}{fragment}"


@functools.lru_cache(maxsize=64)
def _utm_query(items: tuple[tuple[str, object], ...]) -> tuple[dict[str, str], str]:
    params: dict[str, str] = {}
    for key, value in items:
        name = key if key.startswith("utm_") else f"utm_{key}"
        if name in UTM_KEYS and value not in (None, ""):
            params[name] = str(value)
    return params, urlencode(params)


class LinkTracker:
    """One message's links: the destinations in index order and their tracked URLs."""

    def __init__(
        self,
        *,
        rewrite_link: LinkRewriter | None = None,
        utm: Mapping[str, object] | None = None,
        utm_hosts: Collection[str] | None = None,
        untracked: Collection[str] = (),
    ) -> None:
        self.rewrite_link = rewrite_link
        self.utm = utm
        self.utm_hosts = utm_hosts
        self.untracked = frozenset(untracked)
        #: Destination of each tracked link, by the index given to ``rewrite_link``.
        self.destinations: list[str] = []
        self._tracked_url: dict[str, str] = {}

    def track(self, url: str, *, reuse: bool = False) -> str | None:
        """The URL to put in the message for a web link, or ``None`` to leave it alone.

        ``reuse``: a destination seen before gets its earlier index and tracked URL (the
        text part); otherwise every occurrence is a link of its own (the HTML part, where
        a product's picture and name are two links).
        """
        if not is_web_url(url) or url in self.untracked:
            return None
        destination = with_utm(url, self.utm, hosts=self.utm_hosts)
        if reuse and destination in self._tracked_url:
            return self._tracked_url[destination]
        index = len(self.destinations)
        self.destinations.append(destination)
        tracked = self.rewrite_link(destination, index) if self.rewrite_link is not None else destination
        self._tracked_url.setdefault(destination, tracked)
        return tracked

    def text_target(self, url: str) -> tuple[str, str]:
        """How the generated text part shows a link (see ``plaintext.TextPlan.assemble``)."""
        if is_web_url(url):
            return "web", self.track(url, reuse=True) or url
        if url[:7].lower() == "mailto:":
            return "mailto", url[7:].split("?", 1)[0]
        return "other", url


_TEXT_URL = re.compile(r"""https?://[^\s<>"')\]]+""", re.IGNORECASE)


def track_text_links(text: str, links: LinkTracker) -> str:
    """Track the web URLs of a hand-written text part."""

    def replace(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(".,;:!?")
        tracked = links.track(url, reuse=True)
        return (tracked or url) + match.group(0)[len(url) :]

    return _TEXT_URL.sub(replace, text)
