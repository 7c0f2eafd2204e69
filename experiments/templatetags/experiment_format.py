"""Number formats of the results page: rates as percentages, effects signed, p-values readable."""

from __future__ import annotations

import math

from django import template

register = template.Library()


def _number(value) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@register.filter
def pct(value, decimals: int = 2) -> str:
    number = _number(value)
    return "–" if number is None else f"{number * 100:.{int(decimals)}f} %"


@register.filter
def effect(value, percent: bool) -> str:
    number = _number(value)
    if number is None:
        return "–"
    return f"{number * 100:+.2f} %" if percent else f"{number:+.4g}"


@register.filter
def interval(values, percent: bool) -> str:
    if not values:
        return "–"
    return f"{effect(values[0], percent)} to {effect(values[1], percent)}"


@register.filter
def pvalue(value) -> str:
    number = _number(value)
    if number is None:
        return "–"
    return "< 0.0001" if number < 0.0001 else f"{number:.4f}"


@register.filter
def money(value) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:,.2f}"
