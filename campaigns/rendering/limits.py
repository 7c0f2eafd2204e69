"""Budgets that keep a marketer's template from hanging or flooding a worker.

Jinja's sandbox stops a template from reaching Python internals but puts no bound on
how long it runs or how much it builds: ``range()`` is capped, yet two nested loops,
``'a' * 10**9`` or a macro that calls itself still take a worker down. The sandbox
environment (``environment.py``) calls into this module from the hooks a template
cannot avoid, so that:

* a wall-clock deadline is checked on every loop iteration and every call (macro,
  ``caller()``, ``loop()``, method) and filter: a template can only run long by repeating
  work, and every way to repeat goes through one of those -- a tight nested loop included;
* every value a template builds is checked *before* it is built against a size cap, so a
  single C-level operation (``str * int``, ``str.center``, ``'%9999999d' % 1``) can
  never allocate more than the cap;
* everything that can pile up in memory -- output (including macro and block buffers),
  texts built by filters and calls, items materialised by ``|list``-like filters -- is
  counted against a total.

The budget of the render in progress lives in a ``ContextVar``, so one compiled template
can be rendered by several threads at once, each under its own budget.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import re
import string
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

#: Caps on the rendered size of each part, in characters. They are ceilings against runaway
#: templates, not style advice: Gmail clips HTML bodies above ~100 KB long before this.
DEFAULT_OUTPUT_LIMITS: Mapping[str, int] = {
    "subject": 1_000,
    "preheader": 1_000,
    "html": 1_000_000,
    "text": 500_000,
    "push_title": 1_000,
    "push_body": 4_000,
    "push_url": 2_048,
    "push_icon": 2_048,
}


@dataclass(frozen=True)
class RenderLimits:
    """What one message may cost. One deadline covers every part of the message."""

    #: Wall-clock seconds for all parts of one message together.
    time_limit: float = 1.0
    #: Largest rendered part, per field name; fields not listed get ``default_output_limit``.
    output_limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_OUTPUT_LIMITS))
    default_output_limit: int = 100_000
    #: Largest template source a marketer may save, per part.
    max_source_chars: int = 100_000
    #: Largest string (or printed size of a list) any single operation may build.
    max_value_chars: int = 1_000_000
    #: Most items in a ``range()``, a repeated list, ``|list``, ``|batch``...
    max_items: int = 10_000
    #: Largest integer an operator may build (``10 ** 10 ** 10`` would never finish).
    max_int_bits: int = 4_096
    #: Deepest nesting of macro / ``caller()`` / ``loop()`` calls.
    max_call_depth: int = 40
    #: Characters produced in total: output chunks, buffered macro and block output, and every
    #: string a filter, method, operator or ``~`` builds. Output inside macros is assembled in
    #: memory before it reaches the output counter, and ``items|map('center', 99999)|list``
    #: builds many values each under the per-value cap, so this is what bounds memory.
    max_produced_chars: int = 8_000_000
    #: Items materialised in total by ``|list``, ``|batch``, ``|join``... (each capped at
    #: ``max_items``): ``[range(10000)]|map('list')``-style nesting stays bounded.
    max_produced_items: int = 200_000
    #: Longest input for the regex-driven text filters (urlize, title, wordwrap, wordcount,
    #: striptags), each of which takes ~0.3 s on a megabyte without a chance to check the clock.
    max_slow_filter_input: int = 100_000

    def output_limit(self, field_name: str) -> int:
        return self.output_limits.get(field_name, self.default_output_limit)


class LimitExceeded(Exception):  # noqa: N818 -- reads as "raise LimitExceeded(...)"
    """A template went over one of its limits. ``reason`` is a short code for the API."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class OutsideBudget(RuntimeError):  # noqa: N818
    """Template code ran without an active budget: something bypassed ``render_message_parts``.

    The hooks refuse to run unbounded rather than fall back to "no limits"; this also keeps
    Jinja's compile-time constant folding from running filters (it catches the error and
    leaves the expression for render time, where a budget is active).
    """


class RenderBudget:
    """The state of one message's render: deadline, nesting depth and work done.

    It also keeps the message's top-level context, so filters inside a macro imported
    without context still format money and dates for the right customer.
    """

    __slots__ = ("deadline", "limits", "depth", "produced", "produced_items", "context", "slots")

    def __init__(
        self, limits: RenderLimits, deadline: float, context: Mapping[str, object] | None = None
    ) -> None:
        self.limits = limits
        self.deadline = deadline
        self.depth = 0
        self.produced = 0
        self.produced_items = 0
        self.context = context or {}
        #: Values printed by an HTML part rendered with value markers (``environment.py``);
        #: ``None`` when the part is rendered plainly.
        self.slots: object | None = None

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(
                "time_limit",
                f"the template took longer than {self.limits.time_limit:g} s to render "
                "(look for loops inside loops or macros that call themselves)",
            )

    def built(self, value: object) -> None:
        """Account for a string a template operation just built."""
        if isinstance(value, str):
            check_value_size("a computed text", len(value), self.limits)
            self.add_produced(len(value))

    def add_produced(self, size: int) -> None:
        self.produced += size
        if self.produced > self.limits.max_produced_chars:
            raise LimitExceeded(
                "output_limit",
                f"the template produced more than {self.limits.max_produced_chars:,} characters "
                "in total (output, macro bodies and computed texts)",
            )


_ACTIVE: contextvars.ContextVar[RenderBudget | None] = contextvars.ContextVar(
    "reachly_render_budget", default=None
)


def active_budget() -> RenderBudget:
    budget = _ACTIVE.get()
    if budget is None:
        raise OutsideBudget("template code ran outside a render; no limits are active")
    return budget


@contextmanager
def budget_scope(budget: RenderBudget) -> Iterator[RenderBudget]:
    token = _ACTIVE.set(budget)
    try:
        yield budget
    finally:
        _ACTIVE.reset(token)


def _too_big(what: str, size: int, cap: int) -> LimitExceeded:
    return LimitExceeded(
        "value_limit", f"{what} would be {size:,} characters long, more than the {cap:,} allowed"
    )


# ---------------------------------------------------------------------------------------
# Sizes


def printed_size(value: object, cap: int) -> int:
    """Upper estimate of ``len(str(value))``, computed without building the string.

    Stops counting once ``cap`` is passed (returns ``cap + 1``), so a list holding the same
    megabyte string 10,000 times costs a few steps, not ten gigabytes.
    """
    total = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() * 30103 // 100000 + 2
        elif isinstance(item, range):
            total += len(item) * (len(str(max(abs(item.start), abs(item.stop)))) + 2)
        elif isinstance(item, (float, Decimal, dt.date, dt.time)):
            total += 40
        elif isinstance(item, Mapping):
            if depth > 50:
                return cap + 1
            total += 2 + 4 * len(item)
            stack.extend((key, depth + 1) for key in item)
            stack.extend((val, depth + 1) for val in item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            if depth > 50:
                return cap + 1
            total += 2 + 2 * len(item)
            if total > cap:
                return cap + 1
            stack.extend((elem, depth + 1) for elem in item)
        else:
            total += 80
        if total > cap:
            return cap + 1
    return total


def check_value_size(what: str, size: int, limits: RenderLimits) -> None:
    if size > limits.max_value_chars:
        raise _too_big(what, size, limits.max_value_chars)


def check_items(what: str, count: int, limits: RenderLimits) -> None:
    if count > limits.max_items:
        raise LimitExceeded(
            "value_limit", f"{what} would hold {count:,} items, more than the {limits.max_items:,} allowed"
        )


def bounded_list(iterable: Iterable[object], what: str, budget: RenderBudget) -> list[object]:
    """Materialise an iterable from template land, counting items and watching the clock."""
    items: list[object] = []
    cap = budget.limits.max_items
    for item in iterable:
        items.append(item)
        if len(items) > cap:
            check_items(what, len(items), budget.limits)
        if len(items) & 255 == 0:
            budget.tick()
    budget.produced_items += len(items)
    if budget.produced_items > budget.limits.max_produced_items:
        raise LimitExceeded(
            "value_limit",
            f"the template built more than {budget.limits.max_produced_items:,} list items in total",
        )
    return items


# ---------------------------------------------------------------------------------------
# Operators


def _int_bits(value: object) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def check_binop(operator: str, left: object, right: object, limits: RenderLimits) -> None:
    """Refuse an intercepted operator whose result would exceed the caps, before running it."""
    if operator == "*":
        if isinstance(left, int) and not isinstance(left, bool) and isinstance(right, (str, list, tuple)):
            left, right = right, left
        if isinstance(left, (str, list, tuple)) and isinstance(right, int):
            times = max(right, 0)
            if isinstance(left, str):
                check_value_size("repeating a text", len(left) * times, limits)
            else:
                check_items("repeating a list", len(left) * times, limits)
                one = printed_size(left, limits.max_value_chars)
                check_value_size("repeating a list", one * times, limits)
        elif (
            isinstance(left, int)
            and isinstance(right, int)
            and _int_bits(left) + _int_bits(right) > limits.max_int_bits
        ):
            raise LimitExceeded("value_limit", "a multiplication would build a number too large to print")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if _int_bits(left) * right > limits.max_int_bits:
                raise LimitExceeded("value_limit", "a power would build a number too large to print")
        elif (
            isinstance(left, Decimal | float)
            and isinstance(right, int | Decimal)
            and abs(Decimal(right)) > 10_000
        ):
            raise LimitExceeded("value_limit", "a power's exponent is too large")
    elif operator == "+":
        if isinstance(left, str) and isinstance(right, str):
            check_value_size("joining two texts", len(left) + len(right), limits)
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            check_items("adding two lists", len(left) + len(right), limits)
            size = printed_size(left, limits.max_value_chars) + printed_size(right, limits.max_value_chars)
            check_value_size("adding two lists", size, limits)
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left, right, limits)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def check_percent_format(fmt: str, args: object, limits: RenderLimits) -> None:
    """``'%0999999999d' % 1`` allocates a gigabyte in one C call: check widths first."""
    cap = limits.max_value_chars
    widest = 0
    specs = 0
    for match in _PERCENT_SPEC.finditer(fmt):
        width, precision, _kind = match.groups()
        if width == "*" or precision == "*":
            raise LimitExceeded("value_limit", "'*' widths are not allowed in % formats")
        for number in (width, precision):
            if number is not None:
                if len(number) > 9 or int(number) > cap:
                    raise _too_big("a % format field", int(number[:12]), cap)
                widest = max(widest, int(number))
        specs += 1
    values = args.values() if isinstance(args, Mapping) else args if isinstance(args, tuple) else (args,)
    largest = max((printed_size(v, cap) for v in values), default=0)
    check_value_size("a % format", len(fmt) + specs * (widest + largest), limits)


_FORMATTER = string.Formatter()


def check_brace_format(
    fmt: str, args: tuple[object, ...], kwargs: Mapping[str, object], limits: RenderLimits
) -> None:
    """The ``str.format`` counterpart of :func:`check_percent_format`."""
    cap = limits.max_value_chars
    widest = 0
    fields = 0
    try:
        parsed = list(_FORMATTER.parse(fmt))
    except ValueError as exc:
        raise LimitExceeded("value_limit", f"bad format string: {exc}") from None
    for _literal, name, spec, _conversion in parsed:
        if name is None:
            continue
        fields += 1
        if spec and "{" in spec:
            raise LimitExceeded("value_limit", "nested {} fields inside a format spec are not allowed")
        for number in re.findall(r"\d+", spec or ""):
            if len(number) > 9 or int(number) > cap:
                raise _too_big("a format field", int(number[:12]), cap)
            widest = max(widest, int(number))
    values = list(args) + list(kwargs.values())
    largest = max((printed_size(v, cap) for v in values), default=0)
    check_value_size("a format", len(fmt) + fields * (widest + largest), limits)


# ---------------------------------------------------------------------------------------
# String methods that can amplify their input


def check_width(what: str, width: object, base: int, limits: RenderLimits) -> None:
    if isinstance(width, int):
        check_value_size(what, max(width, base), limits)


def check_replace(text: str, old: object, new: object, count: object, limits: RenderLimits) -> None:
    if not (isinstance(old, str) and isinstance(new, str)):
        return
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    check_value_size("a replace", len(text) + occurrences * len(new), limits)


def checked_join(separator: str, items: Iterable[object], budget: RenderBudget) -> list[object]:
    """Materialise the items of a join and check the joined size; returns the items."""
    listed = bounded_list(items, "a join", budget)
    cap = budget.limits.max_value_chars
    size = len(separator) * max(len(listed) - 1, 0)
    for item in listed:
        size += printed_size(item, cap)
        if size > cap:
            break
    check_value_size("a join", size, budget.limits)
    return listed


def check_str_method(
    owner: str, name: str, args: tuple[object, ...], kwargs: dict[str, object], budget: RenderBudget
) -> tuple[object, ...]:
    """Pre-check the few allowed ``str`` methods whose result can dwarf their input.

    Returns the (possibly materialised) positional arguments to call the method with.
    """
    limits = budget.limits
    if name in ("center", "ljust", "rjust", "zfill"):
        width = args[0] if args else kwargs.get("width")
        check_width(f"{name}()", width, len(owner), limits)
    elif name == "replace":
        old = args[0] if args else kwargs.get("old")
        new = args[1] if len(args) > 1 else kwargs.get("new")
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        check_replace(owner, old, new, count, limits)
    elif name == "join" and args:
        return (checked_join(owner, args[0], budget), *args[1:])
    return args
