"""Filters a marketer can use, and guarded versions of Jinja's built-in ones.

Every filter checks the render deadline before it runs. Built-ins that can turn a small
input into a huge output (``center``, ``indent``, ``wordwrap``, ``replace``, ``join``,
``format``, ``batch``, ``slice``, ``list``, ``string``, ``tojson``, ``sum``) check the size
of what they are about to build first. ``random``, ``pprint`` and ``safe`` are not offered:
previews must match sends, and there is nothing a marketer needs to un-escape -- HTML goes
in the template itself, customer data is always escaped.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from jinja2 import filters as jf
from jinja2 import pass_context, pass_environment, pass_eval_context
from jinja2.runtime import Context, Undefined
from jinja2.tests import TESTS

from campaigns.rendering import locale_formats
from campaigns.rendering.limits import (
    LimitExceeded,
    active_budget,
    bounded_list,
    check_items,
    check_percent_format,
    check_replace,
    check_value_size,
    check_width,
    checked_join,
    printed_size,
)
from campaigns.rendering.links import with_query, with_utm
from campaigns.rendering.markers import MARK_OPEN, inspected_captured_output

# ---------------------------------------------------------------------------------------
# Context helpers: filters read the customer's locale and timezone from the render context;
# inside a macro imported without context, from the message's context kept by the budget;
# English and UTC when there is no customer at all.


def _customer(context: Context) -> Mapping[str, Any]:
    customer = context.get("customer")
    if not isinstance(customer, Mapping):
        customer = active_budget().context.get("customer")
    return customer if isinstance(customer, Mapping) else {}


def _locale(context: Context, locale: str | None) -> str | None:
    return locale or _customer(context).get("locale")


def _timezone(context: Context, tz: str | None) -> dt.tzinfo:
    name = tz or _customer(context).get("timezone") or "UTC"
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r} (use names like 'Europe/Paris')") from None


def _as_moment(value: object) -> dt.date:
    if isinstance(value, Undefined):
        str(value)  # raises the undefined error with its message
    if isinstance(value, (dt.date, dt.datetime)):
        return value
    if isinstance(value, str):
        try:
            return (
                dt.datetime.fromisoformat(value)
                if "T" in value or " " in value.strip()
                else dt.date.fromisoformat(value)
            )
        except ValueError:
            raise ValueError(f"{value!r} is not a date (expected ISO 8601 like 2026-03-14)") from None
    raise ValueError(f"{value!r} is not a date")


def _in_zone(moment: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(zone)


# ---------------------------------------------------------------------------------------
# Marketer filters


@pass_context
def money(context: Context, amount: object, currency: str | None = None, decimals: int | None = None) -> str:
    """``{{ item.price|money(item.currency) }}`` -> ``€ 19,99`` / ``$19.99`` by customer locale."""
    if amount is None or isinstance(amount, Undefined):
        raise ValueError("money: the amount is empty")
    if not currency or isinstance(currency, Undefined):
        raise ValueError("money: give a currency, e.g. |money('EUR') or |money(item.currency)")
    return locale_formats.format_money(amount, currency, locale=_locale(context, None), decimals=decimals)


@pass_context
def number(context: Context, value: object, decimals: int = 0) -> str:
    """``{{ loyalty.points|number }}`` -> ``12,500`` (grouped the customer's way)."""
    return locale_formats.format_number(value, decimals=decimals, locale=_locale(context, None))


@pass_context
def percent(context: Context, value: object, decimals: int = 0) -> str:
    """``{{ 0.15|percent }}`` -> ``15%``."""
    return locale_formats.format_percent(value, decimals=decimals, locale=_locale(context, None))


@pass_context
def date(context: Context, value: object, style: str = "long", tz: str | None = None) -> str:
    """A date in the customer's language; datetimes are first moved to their timezone."""
    moment = _as_moment(value)
    if isinstance(moment, dt.datetime):
        moment = _in_zone(moment, _timezone(context, tz)).date()
    return locale_formats.format_date(moment, style=style, locale=_locale(context, None))


@pass_context
def datetime(context: Context, value: object, style: str = "long", tz: str | None = None) -> str:
    """A date and time in the customer's timezone (naive values are taken as UTC)."""
    moment = _as_moment(value)
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.combine(moment, dt.time(0, 0))
    return locale_formats.format_datetime(
        _in_zone(moment, _timezone(context, tz)), style=style, locale=_locale(context, None)
    )


@pass_context
def days_until(context: Context, value: object) -> int:
    """Whole days from the send time (``now``) to a date, in the customer's timezone."""
    now = context.get("now")
    if not isinstance(now, dt.datetime):
        now = active_budget().context.get("now")
    if not isinstance(now, dt.datetime):
        raise ValueError("days_until needs 'now' in the context")
    zone = _timezone(context, None)
    target = _as_moment(value)
    if isinstance(target, dt.datetime):
        target = _in_zone(target, zone).date()
    return (target - _in_zone(now, zone).date()).days


def first_name(value: object, fallback: str = "there") -> str:
    """``Hi {{ customer|first_name('there') }}``: the first name, tidied, or the fallback."""
    name = value.get("first_name") if isinstance(value, Mapping) else value
    if name is None or isinstance(name, Undefined):
        return fallback
    cleaned = " ".join(str(name).split())
    if not cleaned:
        return fallback
    if cleaned.isupper() and len(cleaned) > 1:
        cleaned = cleaned.title()
    return cleaned


def plural(count: object, singular: str, plural_form: str | None = None) -> str:
    """``{{ n|plural('point') }}`` -> ``point`` for 1, ``points`` otherwise."""
    try:
        one = abs(float(count)) == 1  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"plural: {count!r} is not a number") from None
    if one:
        return singular
    return plural_form if plural_form is not None else singular + "s"


def utm(
    url: str,
    source: str | None = None,
    medium: str | None = None,
    campaign: str | None = None,
    content: str | None = None,
    term: str | None = None,
) -> str:
    """Add UTM parameters to a link, keeping any already in it; non-web links are untouched."""
    params = {"source": source, "medium": medium, "campaign": campaign, "content": content, "term": term}
    return with_utm(str(url), params)


def add_query(url: str, **params: object) -> str:
    """``{{ product.url|add_query(ref='email') }}``: set query parameters, properly encoded."""
    return with_query(str(url), params)


# ---------------------------------------------------------------------------------------
# Guarded built-ins


def center(value: str, width: int = 80) -> str:
    check_width("center()", width, len(str(value)), active_budget().limits)
    return jf.do_center(value, width)


def indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    unit = len(width) if isinstance(width, str) else int(width)
    check_value_size("indent()", len(text) + (text.count("\n") + 2) * max(unit, 0), active_budget().limits)
    return jf.do_indent(s, width, first, blank)


@pass_environment
def wordwrap(
    environment: Any,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = str(s)
    separator = len(wrapstring if wrapstring is not None else environment.newline_sequence)
    lines = len(text) // max(int(width), 1) + text.count("\n") + 1
    check_value_size("wordwrap()", len(text) + lines * separator, active_budget().limits)
    return jf.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


@pass_eval_context
def replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    check_replace(str(s), old, new, count, active_budget().limits)
    return jf.do_replace(eval_ctx, s, old, new, count)


@pass_eval_context
def join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: str | None = None) -> str:
    budget = active_budget()
    items = bounded_list(value, "|join", budget)
    if attribute is not None:
        getter = jf.make_attrgetter(eval_ctx.environment, attribute)
        items = [getter(item) for item in items]
    return jf.do_join(eval_ctx, checked_join(str(d), items, budget), d)


def format_(value: str, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise ValueError("|format takes either positional or keyword arguments, not both")
    check_percent_format(str(value), kwargs or args, active_budget().limits)
    return jf.do_format(value, *args, **kwargs)


def batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> list[list[Any]]:
    budget = active_budget()
    if not isinstance(linecount, int) or linecount < 1:
        raise ValueError("|batch needs a positive number of items per row")
    check_items("|batch", linecount, budget.limits)
    return list(jf.do_batch(bounded_list(value, "|batch", budget), linecount, fill_with))


def slice_(value: Iterable[Any], slices: int, fill_with: Any = None) -> list[list[Any]]:
    budget = active_budget()
    if not isinstance(slices, int) or slices < 1:
        raise ValueError("|slice needs a positive number of columns")
    check_items("|slice", slices, budget.limits)
    return list(jf.do_slice(bounded_list(value, "|slice", budget), slices, fill_with))


def list_(value: Iterable[Any]) -> list[Any]:
    return bounded_list(value, "|list", active_budget())


def string(value: Any) -> str:
    budget = active_budget()
    check_value_size("|string", printed_size(value, budget.limits.max_value_chars), budget.limits)
    return jf.soft_str(value)


@pass_eval_context
def tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
    budget = active_budget()
    if indent is not None and not 0 <= int(indent) <= 8:
        raise LimitExceeded("value_limit", "|tojson indent must be between 0 and 8")
    check_value_size("|tojson", 4 * printed_size(value, budget.limits.max_value_chars), budget.limits)
    return jf.do_tojson(eval_ctx, value, indent)


@pass_environment
def sum_(environment: Any, iterable: Iterable[Any], attribute: str | None = None, start: Any = 0) -> Any:
    """Numbers only: ``sum`` with a list ``start`` is quadratic in C and cannot be interrupted."""
    if isinstance(start, bool) or not isinstance(start, (int, float, Decimal)):
        raise ValueError("|sum adds up numbers only")
    items = bounded_list(iterable, "|sum", active_budget())
    if attribute is not None:
        getter = jf.make_attrgetter(environment, attribute)
        items = [getter(item) for item in items]
    total = start
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float, Decimal)):
            raise ValueError(f"|sum adds up numbers only, got {type(item).__name__}")
        total = total + item
    if isinstance(total, float) and not math.isfinite(total):
        raise ValueError("|sum overflowed")
    return total


@pass_environment
def attr(environment: Any, value: Any, name: str) -> Any:
    """``|attr('name')`` looks a field up like a dot does. (Jinja's own reads the attribute
    with ``getattr`` before asking the sandbox, which runs property code on any object.)"""
    return environment.getattr(value, str(name))


def round_(value: float, precision: int = 0, method: str = "common") -> float:
    if not isinstance(precision, int) or not -20 <= precision <= 20:
        raise LimitExceeded("value_limit", "|round precision must be between -20 and 20")
    return jf.do_round(value, precision, method)


# ---------------------------------------------------------------------------------------
# The filter table

#: Jinja built-ins offered as they are (they cannot amplify their input).
_PLAIN_BUILTINS = [
    "abs",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "filesizeformat",
    "first",
    "float",
    "forceescape",
    "groupby",
    "int",
    "items",
    "last",
    "length",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "reverse",
    "select",
    "selectattr",
    "sort",
    "striptags",
    "title",
    "trim",
    "truncate",
    "unique",
    "upper",
    "urlencode",
    "urlize",
    "wordcount",
    "xmlattr",
]

_GUARDED_BUILTINS: dict[str, Callable[..., Any]] = {
    "attr": attr,
    "batch": batch,
    "center": center,
    "format": format_,
    "indent": indent,
    "join": join,
    "list": list_,
    "replace": replace,
    "round": round_,
    "slice": slice_,
    "string": string,
    "sum": sum_,
    "tojson": tojson,
    "wordwrap": wordwrap,
}

_MARKETER_FILTERS: dict[str, Callable[..., Any]] = {
    "add_query": add_query,
    "date": date,
    "datetime": datetime,
    "days_until": days_until,
    "first_name": first_name,
    "money": money,
    "number": number,
    "percent": percent,
    "plural": plural,
    "utm": utm,
}


#: Regex-driven filters: linear, but slow enough per megabyte to matter for the deadline.
_SLOW_TEXT_FILTERS = frozenset({"urlize", "title", "wordwrap", "wordcount", "striptags"})


def _marked(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Does any argument hold value markers (captured HTML output, see environment.py)?"""
    for arg in args:
        if isinstance(arg, str) and MARK_OPEN in arg:
            return True
    return any(isinstance(v, str) and MARK_OPEN in v for v in kwargs.values())


def guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Check the deadline before each filter call and account for the text it builds.

    Keeps Jinja's ``pass_context``/``pass_eval_context`` markers (``functools.wraps``
    copies them), so the value is the first positional argument after any of those.
    """
    passes = getattr(function, "jinja_pass_arg", None)
    value_at = 0 if passes is None else 1
    slow = name in _SLOW_TEXT_FILTERS

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = active_budget()
        budget.tick()
        if budget.slots is not None and _marked(args, kwargs):
            inspected_captured_output()
        value = args[value_at] if len(args) > value_at else None
        if slow and isinstance(value, str) and len(value) > budget.limits.max_slow_filter_input:
            raise LimitExceeded(
                "value_limit",
                f"|{name} works on at most {budget.limits.max_slow_filter_input:,} characters",
            )
        result = function(*args, **kwargs)
        budget.built(result)
        return result

    return guarded


def guard_test(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = active_budget()
        if budget.slots is not None and _marked(args, kwargs):
            inspected_captured_output()
        return function(*args, **kwargs)

    return guarded


def filter_table() -> dict[str, Callable[..., Any]]:
    """Every filter offered, before :func:`guard_filter` (the benchmark's baseline uses it)."""
    table: dict[str, Callable[..., Any]] = {name: jf.FILTERS[name] for name in _PLAIN_BUILTINS}
    table.update(_GUARDED_BUILTINS)
    table.update(_MARKETER_FILTERS)
    return table


def marketer_filters() -> dict[str, Callable[..., Any]]:
    return {name: guard_filter(name, function) for name, function in filter_table().items()}


def marketer_tests() -> dict[str, Callable[..., Any]]:
    """Jinja's tests (``is defined``, ``is odd``, ``is in``...), each watching for markers."""
    return {name: guard_test(function) for name, function in TESTS.items()}
