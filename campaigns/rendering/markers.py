"""Value markers: how an HTML part's printed values are kept apart from its structure.

``message.py`` inlines CSS, finds links and writes the text part once per distinct HTML
*skeleton* -- the rendered HTML with each printed value replaced by ``\\ue000N\\ue001``
(two private-use characters around the value's number) -- instead of once per customer.
``environment.py`` renders the HTML part that way; this module holds what the sandbox
hooks in ``environment.py`` and ``filters.py`` share.
"""

from __future__ import annotations

import re

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
