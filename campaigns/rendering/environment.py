"""The sandbox marketer templates run in, and the one function that renders them.

Three environments share one sandbox class:

* ``html`` -- the HTML part; autoescaped; shipped ``templates/email/**/*.html`` loadable.
* ``text`` -- subject, preheader and text part; not escaped (they are not HTML) but just
  as sandboxed; shipped ``templates/email/**/*.txt`` loadable.
* ``push`` -- push title, body, url and icon; shipped ``templates/push/**`` loadable.

Undefined policy ("strict when printed, falsy when tested"): printing, iterating or doing
arithmetic on a missing variable or field is an error naming it (with a "did you mean"
suggestion), and so is printing ``None`` -- "Hi None" and "Hi ," are both garbage in a
subject line. ``{% if customer.attributes.vip %}``, ``is defined`` and ``|default(...)``
work on missing values, so optional data is handled explicitly in the template.

Limits: see ``limits.py``. The hooks below are the places a template cannot avoid:
``getattr``/``getitem``/``call``/intercepted operators (Jinja's own sandbox hooks), every
filter, every ``{% for %}`` iteration (the code generator wraps each loop's iterable),
every ``~`` concatenation and every chunk of output (code generator again).
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
import threading
import time
import types
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateNotFound, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Cycler, Joiner, Namespace, missing

from campaigns.rendering.context import CONTEXT_NAMES, check_plain
from campaigns.rendering.errors import TemplateError, TemplateProblem, problem_from_exception, source_filename
from campaigns.rendering.filters import marketer_filters
from campaigns.rendering.limits import (
    LimitExceeded,
    RenderBudget,
    RenderLimits,
    active_budget,
    budget_scope,
    check_binop,
    check_brace_format,
    check_items,
    check_str_method,
    check_value_size,
    printed_size,
)

SHIPPED_ROOT = Path(__file__).resolve().parents[2] / "templates"

#: Which environment renders which part of a message.
FIELD_KINDS: Mapping[str, str] = {
    "subject": "text",
    "preheader": "text",
    "html": "html",
    "text": "text",
    "push_title": "push",
    "push_body": "push",
    "push_url": "push",
    "push_icon": "push",
}

DEFAULT_LIMITS = RenderLimits()


# ---------------------------------------------------------------------------------------
# Missing values


class MissingValue(StrictUndefined):
    """Strict when printed, iterated or computed with; falsy when tested in an ``if``.

    A missing value reached through a refused attribute (``''.__class__``) is not
    falsy: testing it raises the security error, so a probe cannot tell "refused" from
    "absent" by branching on it.
    """

    __slots__ = ()
    __eq__ = Undefined.__eq__
    __ne__ = Undefined.__ne__
    __hash__ = Undefined.__hash__

    def __bool__(self) -> bool:
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()
        return False

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name = self._undefined_name
        owner = self._undefined_obj
        if owner is missing:
            return (
                f"{name!r} is not a variable here (variables: {', '.join(CONTEXT_NAMES)}); "
                "check the spelling, or guard it with |default(...)"
            )
        if owner is None:
            return f"cannot read {name!r} of an empty value (None); check it with {{% if ... %}} first"
        if isinstance(owner, Mapping):
            keys = [k for k in owner if isinstance(k, str)]
            close = difflib.get_close_matches(str(name), keys, n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"fields: {', '.join(sorted(keys)[:15]) or 'none'}"
            )
            return f"no field {name!r} here ({hint}); use |default(...) for optional fields"
        if isinstance(owner, (list, tuple)) and isinstance(name, int):
            return f"there is no item {name} in a list of {len(owner)}"
        return f"a {type(owner).__name__} value has no {name!r}"


# ---------------------------------------------------------------------------------------
# Shipped layouts and blocks


class ShippedTemplates(BaseLoader):
    """Only the project's own layouts and blocks, read once from disk, by exact name.

    Marketer templates can ``{% extends %}``, ``{% include %}`` and ``{% import %}``
    these and nothing else: a name is looked up in an in-memory table, never joined to a
    path, so ``../`` and ``/etc/passwd`` are simply unknown names.
    """

    def __init__(self, root: Path, suffixes: tuple[str, ...]) -> None:
        self.sources: dict[str, str] = {}
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink() and path.suffix in suffixes:
                    self.sources[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Any]:
        source = self.sources.get(template) if isinstance(template, str) else None
        if source is None:
            available = ", ".join(self.sources) or "none"
            raise TemplateNotFound(
                str(template),
                f"there is no shipped layout or block called {template!r} (available: {available})",
            )
        return source, f"shipped:{template}", lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.sources)


# ---------------------------------------------------------------------------------------
# Code generation: loops, concatenation and literal output go through the budget too

LOOP_GUARD = "_loop_guard"


class GuardedLoop:
    """Wraps a ``{% for %}`` iterable so every iteration checks the deadline."""

    __slots__ = ("_iterable",)

    def __init__(self, iterable: Iterable[Any]) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        tick = active_budget().tick
        for item in self._iterable:
            tick()
            yield item

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]


class GuardedCodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Filter) and loop.iter.name == LOOP_GUARD):
                loop.iter = nodes.Filter(loop.iter, LOOP_GUARD, [], [], None, None, lineno=loop.iter.lineno)
        super().visit_Template(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.bounded_concat({join}, (")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        return f"environment.count_literal({super()._output_const_repr(group)})"


# ---------------------------------------------------------------------------------------
# The sandbox

_STR_METHODS = frozenset(
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
    [
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "weekday",
        "isoweekday",
        "isoformat",
        "date",
        "tzinfo",
        "utcoffset",
    ]
)
_DATE_ATTRS = frozenset(["year", "month", "day", "weekday", "isoweekday", "isoformat"])
_TIME_ATTRS = frozenset(["hour", "minute", "second", "isoformat"])

#: Plain data types: only the listed attributes; everything else is refused.
_DATA_ATTRIBUTES: tuple[tuple[type | tuple[type, ...], frozenset[str]], ...] = (
    (str, _STR_METHODS),
    (Mapping, _DICT_METHODS),
    ((list, tuple), _SEQUENCE_METHODS),
    (dt.datetime, _DATETIME_ATTRS),
    (dt.date, _DATE_ATTRS),
    (dt.time, _TIME_ATTRS),
    ((bool, int, float, Decimal, set, frozenset, type(None)), frozenset()),
)


def _data_allowlist(obj: object) -> frozenset[str] | None:
    for types_, allowed in _DATA_ATTRIBUTES:
        if isinstance(obj, types_):
            return allowed
    return None


def bounded_range(*args: int) -> range:
    budget = active_budget()
    budget.tick()
    numbers = range(*args)
    check_items("range()", len(numbers), budget.limits)
    return numbers


class MarketerSandbox(ImmutableSandboxedEnvironment):
    code_generator_class = GuardedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, loader: BaseLoader | None, autoescape: bool) -> None:
        super().__init__(
            loader=loader,
            autoescape=autoescape,
            undefined=MissingValue,
            finalize=self.finalize_value,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            cache_size=100,
        )
        self.globals.clear()
        self.globals.update(
            {"range": bounded_range, "dict": dict, "namespace": Namespace, "cycler": Cycler, "joiner": Joiner}
        )
        self.filters = marketer_filters()
        self.filters[LOOP_GUARD] = GuardedLoop

    # -- what may be touched ------------------------------------------------------------

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_"):
            return False
        allowed = _data_allowlist(obj)
        if allowed is not None:
            return attr in allowed
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        return self.undefined(
            f"{attribute!r} of a {type(obj).__name__} value cannot be used in templates",
            name=attribute,
            obj=obj,
            exc=SecurityError,
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Dot lookup: a dict's field first (``customer.items`` is the field if it exists),
        then the attributes allowed for the value's type."""
        active_budget().tick()
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        if attribute.startswith("_"):
            return self.unsafe_undefined(obj, attribute)
        allowed = _data_allowlist(obj)
        if allowed is not None and attribute not in allowed:
            if hasattr(type(obj), attribute):
                return self.unsafe_undefined(obj, attribute)
            return self.undefined(obj=obj, name=attribute)
        try:
            value = getattr(obj, attribute)
        except AttributeError:
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=attribute)
        formatter = self.wrap_str_format(value)
        if formatter is not None:
            return formatter
        if self.is_safe_attribute(obj, attribute, value):
            return value
        return self.unsafe_undefined(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        active_budget().tick()
        try:
            return obj[argument]
        except (TypeError, LookupError):
            pass
        if isinstance(argument, str) and not isinstance(obj, Mapping):
            return self.getattr(obj, argument)
        return self.undefined(obj=obj, name=argument)

    def wrap_str_format(self, value: Any) -> Any:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        pattern: str = value.__self__
        is_format_map = value.__name__ == "format_map"

        @functools.wraps(wrapper)
        def checked(*args: Any, **kwargs: Any) -> str:
            budget = active_budget()
            budget.tick()
            if is_format_map:
                mapping = args[0] if args and isinstance(args[0], Mapping) else {}
                check_brace_format(pattern, (), mapping, budget.limits)
            else:
                check_brace_format(pattern, args, kwargs, budget.limits)
            result = wrapper(*args, **kwargs)
            budget.built(result)
            return result

        return checked

    # -- what may run -----------------------------------------------------------------

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = active_budget()
        budget.tick()
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{type(__obj).__name__} objects cannot be called in templates")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and isinstance(__obj, (types.BuiltinMethodType, types.MethodType)):
            if __obj.__name__ not in _STR_METHODS:
                raise SecurityError(f"the text method {__obj.__name__!r} cannot be used in templates")
            args = check_str_method(owner, __obj.__name__, args, kwargs, budget)
        if isinstance(__obj, LoopContext) and args:  # recursive loop: loop(children)
            args = (GuardedLoop(args[0]), *args[1:])
        budget.depth += 1
        try:
            if budget.depth > budget.limits.max_call_depth:
                raise LimitExceeded(
                    "recursion",
                    f"macros, caller() and loop() are nested more than {budget.limits.max_call_depth} deep",
                )
            result = __context.call(__obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        budget.built(result)
        return result

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = active_budget()
        budget.tick()
        check_binop(operator, left, right, budget.limits)
        result = self.binop_table[operator](left, right)
        budget.built(result)
        return result

    # -- output ---------------------------------------------------------------------------

    def finalize_value(self, value: Any) -> Any:
        """Runs on every ``{{ ... }}`` before it becomes text."""
        budget = active_budget()
        if value is None:
            raise LimitExceeded(
                "empty",
                "this prints an empty value (None); give it a fallback, e.g. "
                "{{ customer.first_name|default('there', true) }} or {{ customer|first_name('there') }}",
            )
        if isinstance(value, Undefined):
            return value
        if isinstance(value, (list, tuple, dict)):
            hidden = _undefined_inside(value)
            if hidden is not None:  # a list shows its items' repr, which would hide the error
                hidden._fail_with_undefined_error()
        size = len(value) if isinstance(value, str) else printed_size(value, budget.limits.max_value_chars)
        check_value_size("a printed value", size, budget.limits)
        budget.add_produced(size)
        return value

    def bounded_concat(self, join: Any, parts: tuple[Any, ...]) -> Any:
        budget = active_budget()
        budget.tick()
        cap = budget.limits.max_value_chars
        size = 0
        for part in parts:
            size += len(part) if isinstance(part, str) else printed_size(part, cap)
            if size > cap:
                break
        check_value_size("a '~' concatenation", size, budget.limits)
        result = join(parts)
        budget.built(result)
        return result

    def count_literal(self, text: str) -> str:
        budget = active_budget()
        budget.tick()
        budget.add_produced(len(text))
        return text


def _undefined_inside(value: Any, depth: int = 0) -> Undefined | None:
    if depth > 4:
        return None
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        if isinstance(item, Undefined):
            return item
        if isinstance(item, (list, tuple, dict)):
            found = _undefined_inside(item, depth + 1)
            if found is not None:
                return found
    return None


# ---------------------------------------------------------------------------------------
# Environments and compiled templates

_ENVIRONMENTS: dict[str, MarketerSandbox] = {}
_ENVIRONMENTS_LOCK = threading.Lock()


def environment(kind: str) -> MarketerSandbox:
    """The shared environment for ``html``, ``text`` or ``push`` parts."""
    env = _ENVIRONMENTS.get(kind)
    if env is not None:
        return env
    with _ENVIRONMENTS_LOCK:
        if kind not in _ENVIRONMENTS:
            if kind == "html":
                env = MarketerSandbox(
                    loader=ShippedTemplates(SHIPPED_ROOT / "email", (".html",)), autoescape=True
                )
            elif kind == "text":
                env = MarketerSandbox(
                    loader=ShippedTemplates(SHIPPED_ROOT / "email", (".txt",)), autoescape=False
                )
            elif kind == "push":
                env = MarketerSandbox(
                    loader=ShippedTemplates(SHIPPED_ROOT / "push", (".txt",)), autoescape=False
                )
            else:
                raise ValueError(f"unknown template kind {kind!r}")
            _ENVIRONMENTS[kind] = env
        return _ENVIRONMENTS[kind]


@functools.lru_cache(maxsize=512)
def compiled(kind: str, field: str, source: str) -> Template:
    """Compile once per distinct source: a campaign renders one template 100,000 times."""
    env = environment(kind)
    code = env.compile(source, name=field, filename=source_filename(field))
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def render_field(field: str, source: str, context: Mapping[str, Any], *, budget: RenderBudget) -> str:
    """Render one part under ``budget``; every failure becomes a :class:`TemplateError`."""
    kind = FIELD_KINDS.get(field)
    if kind is None:
        raise ValueError(f"unknown message part {field!r}; expected one of {', '.join(FIELD_KINDS)}")
    limits = budget.limits
    if len(source) > limits.max_source_chars:
        raise TemplateError.single(
            field, f"the template is longer than {limits.max_source_chars:,} characters", reason="invalid"
        )
    cap = limits.output_limit(field)
    chunks: list[str] = []
    size = 0
    with budget_scope(budget):
        try:
            template = compiled(kind, field, source)
        except RecursionError:
            raise TemplateError.single(
                field, "the template is nested too deeply to read", reason="syntax"
            ) from None
        except Exception as exc:
            raise TemplateError([problem_from_exception(exc, field)]) from None
        try:
            for chunk in template.generate(context):
                size += len(chunk)
                if size > cap:
                    raise LimitExceeded("output_limit", f"the {field} part is longer than {cap:,} characters")
                chunks.append(chunk)
        except Exception as exc:  # a broken template must never crash a send: report it
            raise TemplateError([problem_from_exception(exc, field)]) from None
    return "".join(chunks)


def render_fields(
    fields: Mapping[str, str], context: Mapping[str, Any], *, limits: RenderLimits = DEFAULT_LIMITS
) -> dict[str, str]:
    """Render several parts of one message under one deadline, collecting every problem."""
    check_plain(dict(context))
    budget = RenderBudget(limits, time.monotonic() + limits.time_limit, context)
    rendered: dict[str, str] = {}
    problems: list[TemplateProblem] = []
    for field, source in fields.items():
        try:
            rendered[field] = render_field(field, source, context, budget=budget)
        except TemplateError as exc:
            problems.extend(exc.problems)
            if exc.reason == "time_limit":
                break  # the other parts have no time left either; do not blame them
    if problems:
        raise TemplateError(problems)
    return rendered


_WHITESPACE = re.compile(r"\s+")


def one_line(text: str) -> str:
    """Subject, preheader and push texts are single lines whatever the template's layout."""
    return _WHITESPACE.sub(" ", text).strip()
