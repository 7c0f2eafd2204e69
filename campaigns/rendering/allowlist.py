"""What a template may touch on plain data, and the globals it may call (the sandbox's allowlists)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from jinja2.utils import Cycler, Joiner, Namespace

from campaigns.rendering.limits import active_budget, check_items

STR_METHODS = frozenset(
    [
        "capitalize",
        "casefold",
        "center",
        "count",
        "endswith",
        "find",
        "format",
        "index",
        "isalnum",
        "isalpha",
        "isdecimal",
        "isdigit",
        "islower",
        "isnumeric",
        "isspace",
        "istitle",
        "isupper",
        "join",
        "ljust",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "replace",
        "rfind",
        "rindex",
        "rjust",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
        "zfill",
        "striptags",
        "unescape",
    ]
)
_DICT_METHODS = frozenset({"get", "items", "keys", "values"})
_SEQUENCE_METHODS = frozenset({"count", "index"})
_DATETIME_ATTRS = frozenset(
    ["year", "month", "day", "hour", "minute", "second", "weekday", "isoweekday", "isoformat", "date"]
)
_DATE_ATTRS = frozenset(["year", "month", "day", "weekday", "isoweekday", "isoformat"])
_TIME_ATTRS = frozenset(["hour", "minute", "second", "isoformat"])

#: Plain data types: only the listed attributes; everything else is refused.
_DATA_ATTRIBUTES: tuple[tuple[type | tuple[type, ...], frozenset[str]], ...] = (
    (str, STR_METHODS),
    (Mapping, _DICT_METHODS),
    ((list, tuple), _SEQUENCE_METHODS),
    (dt.datetime, _DATETIME_ATTRS),
    (dt.date, _DATE_ATTRS),
    (dt.time, _TIME_ATTRS),
    ((bool, int, float, Decimal, set, frozenset, range, type(None)), frozenset()),
)


def data_allowlist(obj: object) -> frozenset[str] | None:
    for types_, allowed in _DATA_ATTRIBUTES:
        if isinstance(obj, types_):
            return allowed
    return None


def bounded_range(*args: int) -> range:
    budget = active_budget()
    numbers = range(*args)
    check_items("range()", len(numbers), budget.limits)
    return numbers


# Globals are functions, not classes: a class object would offer its own attributes
# (``dict.fromkeys``, ``dict.mro``) to walk from.


def make_dict(**items: Any) -> dict[str, Any]:
    """``dict(a=1, b=2)``."""
    return items


def make_namespace(**attributes: Any) -> Namespace:
    """``namespace(total=0)``: the one object a template may assign to (``{% set ns.total = ... %}``)."""
    return Namespace(**attributes)


def make_cycler(*items: Any) -> Cycler:
    return Cycler(*items)


def make_joiner(separator: str = ", ") -> Joiner:
    return Joiner(separator)
