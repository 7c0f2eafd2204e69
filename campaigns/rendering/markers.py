"""Value markers: how an HTML part's printed values are kept apart from its structure.

``message.py`` inlines CSS, finds links and writes the text part once per distinct HTML
*skeleton* -- the rendered HTML with each printed value replaced by ``\\ue000N\\ue001``
(two private-use characters around the value's number) -- instead of once per customer.
``environment.py`` renders the HTML part that way; this module holds what the sandbox
hooks in ``environment.py`` and ``filters.py`` share.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from markupsafe import Markup

from campaigns.rendering.limits import active_budget

MARK_OPEN = "\ue000"
MARK_CLOSE = "\ue001"
MARKER = re.compile("\ue000([0-9]+)\ue001")


class PlainRenderNeeded(BaseException):  # noqa: N818 -- control flow, not an error
    """The template looked inside captured output that holds value markers.

    Captured output -- what a macro, ``caller()``, a block or ``{% set %}...{% endset %}``
    returns -- holds the markers of the values printed inside it. Printing it, joining it
    with ``~`` or testing its truth gives the same result either way; a filter, test,
    method, comparison, index, slice, loop or container could not, so those hooks raise
    this and the part is rendered again without markers. A ``BaseException`` so that no
    ``except Exception`` on the way (Jinja's, a filter's) swallows it.
    """


def has_marker(value: object) -> bool:
    return isinstance(value, str) and MARK_OPEN in value


def inspected_captured_output() -> None:
    """Called by a hook that met a marked value: start over without markers, if marking."""
    if active_budget().slots is not None:
        raise PlainRenderNeeded


def split_values(text: str) -> list[str | int]:
    """``'https://x/\\ue0003\\ue001?a=1'`` -> ``['https://x/', 3, '?a=1']``."""
    if MARK_OPEN not in text:
        return [text]
    parts: list[str | int] = []
    for number, chunk in enumerate(MARKER.split(text)):
        if number % 2:
            parts.append(int(chunk))
        elif chunk:
            parts.append(chunk)
    return parts


class ValueSlots:
    """The values an HTML part printed, each once, in the order first printed.

    Printed text goes into the output as a marker; markup (a macro's or block's output,
    ``|urlize``...) goes in as it is, since it is template structure -- unless it holds no
    tag at all, in which case it is a value too.
    """

    __slots__ = ("escaped", "raw", "index")

    def __init__(self) -> None:
        self.escaped: list[str] = []
        self.raw: list[str] = []
        self.index: dict[str, int] = {}

    def marker_for(self, value: Any) -> Any:
        if type(value) is str:
            raw = value
            escaped = None
        elif hasattr(value, "__html__"):
            escaped = value.__html__()
            if "<" in escaped or MARK_OPEN in escaped or not escaped:
                return value
            raw = Markup(escaped).unescape()  # noqa: S704 -- already markup; unescaped for the text part
        else:
            raw = str(value)
            escaped = None
        if not raw:
            return raw
        number = self.index.get(raw)
        if number is None:
            if escaped is None:
                if MARK_OPEN in raw:  # a list holding captured output, or data holding U+E000
                    raise PlainRenderNeeded
                escaped = escape_text(raw)
            number = self.index[raw] = len(self.escaped)
            self.escaped.append(escaped)
            self.raw.append(raw)
        return marker(number)


def escape_text(text: str) -> str:
    """Exactly what ``markupsafe.escape`` does to a plain string (so a part rendered with
    markers is byte for byte a part rendered without), minus making a ``Markup``."""
    return (
        text.replace("&", "&amp;")
        .replace(">", "&gt;")
        .replace("<", "&lt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


MARKER_STRINGS: list[str] = []
_MARKERS_LOCK = threading.Lock()


def marker(number: int) -> str:
    """The marker of value ``number``, made once (this runs for every value printed)."""
    if number >= len(MARKER_STRINGS):
        with _MARKERS_LOCK:
            while len(MARKER_STRINGS) <= number:
                MARKER_STRINGS.append(f"{MARK_OPEN}{len(MARKER_STRINGS)}{MARK_CLOSE}")
    return MARKER_STRINGS[number]
