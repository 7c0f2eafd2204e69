"""What a template may print: data only, within the size limits (every printed value comes here)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from jinja2.environment import TemplateModule
from jinja2.runtime import Undefined
from jinja2.sandbox import SecurityError
from markupsafe import Markup

from campaigns.rendering.limits import LimitExceeded, RenderBudget, check_value_size, printed_size


def checked_output(value: Any, budget: RenderBudget) -> Any:
    """What every printed value goes through: the printing policy, its size, the total."""
    kind = type(value)
    if kind is str or kind is Markup:
        size = len(value)
    elif value is None:
        raise LimitExceeded(
            "empty",
            "this prints an empty value (None); give it a fallback, e.g. "
            "{{ customer.first_name|default('there', true) }} or {{ customer|first_name('there') }}",
        )
    elif isinstance(value, Undefined):
        return value  # printing it raises the undefined error
    elif isinstance(value, TemplateModule):
        raise SecurityError("an imported template cannot be printed; print one of its macros")
    elif isinstance(value, str):
        size = len(value)
    else:
        check_printable(value)
        size = printed_size(value, budget.limits.max_value_chars)
    limits = budget.limits
    if size > limits.max_value_chars:
        check_value_size("a printed value", size, limits)
    budget.produced += size
    if budget.produced > limits.max_produced_chars:
        budget.add_produced(0)  # raises with the message
    return value


PRINTABLE_SCALARS = (str, bool, int, float, Decimal, dt.date, dt.time, type(None))


def check_printable(value: Any, depth: int = 0) -> None:
    """Only data prints: an object's ``repr`` (``<built-in method join of str object at
    0x7f...>``, ``<generator object ...>``) is never content, and can leak memory addresses.
    A list is checked item by item, since it prints its items' ``repr`` and would hide a
    missing value inside it."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, PRINTABLE_SCALARS):
        return
    if depth < 6 and isinstance(value, (list, tuple, dict)):
        for item in value.values() if isinstance(value, dict) else value:
            check_printable(item, depth + 1)
        return
    hint = " (add |list, or |join(', '))" if isinstance(value, Iterator) else ""
    raise SecurityError(f"a {type(value).__name__} value cannot be printed{hint}")
