"""The sandbox marketer templates run in, and the function that renders them.

Three environments share one sandbox class:

* ``html`` -- the HTML part; autoescaped (and it cannot be turned off); the shipped
  ``templates/email/**/*.html`` can be extended, included and imported.
* ``text`` -- subject, preheader and text part; not HTML-escaped (they are not HTML) but
  just as sandboxed; the shipped ``templates/email/**/*.txt`` are loadable.
* ``push`` -- push title, body, url and icon; the shipped ``templates/push/**`` are loadable.

Undefined policy ("strict when printed, falsy when tested"): printing, iterating or doing
arithmetic on a missing variable or field is an error naming it (with a "did you mean"
suggestion), and so is printing ``None`` -- "Hi None" and "Hi ," are both garbage in a
subject line. ``{% if customer.attributes.vip %}``, ``is defined`` and ``|default(...)``
work on missing values, so optional data is handled explicitly in the template.

Limits: see ``limits.py``. The hooks below are the places a template cannot avoid: every
``{% for %}`` iteration (the code generator wraps each loop's iterable), every call
(macros, ``caller()``, ``loop()``, methods), every filter, the intercepted operators, every
``~`` concatenation and every chunk of output.

Value markers (HTML part only). The HTML of a campaign is the same for every customer
except for the values printed into it, so the costly steps of building a message (CSS
inlining, finding links, writing the text part; ``message.py``) are done once per distinct
*skeleton*: the HTML with each printed value replaced by a marker ``\\ue000N\\ue001``. The
render records the values, and ``RenderedHtml.html`` substitutes them back. A marker could
only change the result if the template looked inside its own captured output (a macro's
or ``{% set %}`` block's text) with a filter, test, method, comparison, index or loop;
each of those is a hook, and a hook that meets a marker renders the part again without
markers (``PlainRenderNeeded``), so the result is always what a plain render gives.
"""

from __future__ import annotations

import functools
import re
import threading
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2.debug  # noqa: F401 -- Jinja imports it at the first template error; import it now
from jinja2 import Template
from jinja2.runtime import LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import escape

from campaigns.rendering.allowlist import (
    STR_METHODS,
    bounded_range,
    data_allowlist,
    make_cycler,
    make_dict,
    make_joiner,
    make_namespace,
)
from campaigns.rendering.codegen import LOOP_GUARD, GuardedCodeGenerator, GuardedLoop
from campaigns.rendering.context import check_plain
from campaigns.rendering.errors import TemplateError, TemplateProblem, problem_from_exception, source_filename
from campaigns.rendering.filters import marketer_filters, marketer_tests
from campaigns.rendering.limits import (
    LimitExceeded,
    RenderBudget,
    RenderLimits,
    active_budget,
    budget_scope,
    check_binop,
    check_brace_format,
    check_str_method,
    check_value_size,
    printed_size,
)
from campaigns.rendering.loader import SHIPPED_ROOT, ShippedTemplates
from campaigns.rendering.markers import (
    MARK_OPEN,
    MARKER,
    MARKER_STRINGS,
    PlainRenderNeeded,
    ValueSlots,
    has_marker,
    inspected_captured_output,
)
from campaigns.rendering.printing import checked_output
from campaigns.rendering.undefined import MissingValue

#: Which environment renders which part of a message.
PART_KINDS: Mapping[str, str] = {
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
# The sandbox


class MarketerSandbox(ImmutableSandboxedEnvironment):
    code_generator_class = GuardedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, loader: ShippedTemplates, autoescape: bool) -> None:
        super().__init__(
            loader=loader,
            autoescape=autoescape,
            undefined=MissingValue,
            finalize=self.finalize_value,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            cache_size=-1,  # the shipped templates only; marketer templates are cached by source
        )
        self.globals.clear()
        self.globals.update(
            {
                "range": bounded_range,
                "dict": make_dict,
                "namespace": make_namespace,
                "cycler": make_cycler,
                "joiner": make_joiner,
            }
        )
        self.filters = marketer_filters()
        self.filters[LOOP_GUARD] = GuardedLoop
        self.tests = marketer_tests()
        # Compile the shipped templates now, outside any render: Jinja folds constant
        # expressions while compiling, and no render's state may end up in shared code.
        for name in loader.list_templates():
            self.get_template(name)

    # -- what may be touched ------------------------------------------------------------

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_"):
            return False
        allowed = data_allowlist(obj)
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
        """Dot lookup: a dict's field first (``item.items`` is the field if there is one),
        then the attributes allowed for the value's type."""
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        elif isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        elif isinstance(obj, str) and MARK_OPEN in obj:
            inspected_captured_output()
        if attribute.startswith("_"):
            return self.unsafe_undefined(obj, attribute)
        allowed = data_allowlist(obj)
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
        if has_marker(obj) or has_marker(argument):
            inspected_captured_output()
        try:
            return obj[argument]
        except (TypeError, LookupError):
            pass
        if isinstance(argument, str) and not isinstance(obj, Mapping):
            return self.getattr(obj, argument)
        return self.undefined(obj=obj, name=argument)

    def observed(self, value: Any) -> Any:
        """Compared, sliced or put in a list: captured output must not carry markers."""
        if isinstance(value, str) and MARK_OPEN in value:
            inspected_captured_output()
        return value

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
        if budget.slots is not None and (
            any(has_marker(a) for a in args) or any(has_marker(v) for v in kwargs.values())
        ):
            raise PlainRenderNeeded
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{type(__obj).__name__} objects cannot be called in templates")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and isinstance(__obj, (types.BuiltinMethodType, types.MethodType)):
            if __obj.__name__ not in STR_METHODS:
                raise SecurityError(f"the text method {__obj.__name__!r} cannot be used in templates")
            args = check_str_method(owner, __obj.__name__, args, kwargs, budget)
        if isinstance(__obj, LoopContext) and args:  # recursive loop: loop(children)
            per_item = getattr(__obj._iterable, "literal_per_item", 0)
            args = (GuardedLoop(args[0], per_item), *args[1:])
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
        if operator == "%" and has_marker(left):
            inspected_captured_output()
        check_binop(operator, left, right, budget.limits)
        result = self.binop_table[operator](left, right)
        budget.built(result)
        return result

    # -- output ---------------------------------------------------------------------------

    def finalize_value(self, value: Any) -> Any:
        """Runs on every ``{{ ... }}`` of a text part before it becomes text (never at
        compile time: outside a render there is no budget, so Jinja leaves it for runtime)."""
        return checked_output(value, active_budget())

    def finalize_html(self, value: Any) -> Any:
        """The HTML counterpart: checks, then escapes -- or, rendering with value markers,
        returns the value's marker (see ``ValueSlots``)."""
        budget = active_budget()
        value = checked_output(value, budget)
        slots = budget.slots
        if slots is None or isinstance(value, Undefined):
            return escape(value)
        if type(value) is str:  # the common case, inlined: a value printed before reuses its marker
            number = slots.index.get(value)
            if number is not None:
                return MARKER_STRINGS[number]
        return slots.marker_for(value)

    def bounded_concat(self, join: Any, parts: tuple[Any, ...]) -> Any:
        budget = active_budget()
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
def compiled(kind: str, part: str, source: str) -> Template:
    """Compile once per distinct source: a campaign renders one template 100,000 times.

    The cache key is the source text itself; Python keeps a string's hash on the string,
    so a sender holding its template strings pays for hashing once, not per message.
    """
    if _RESERVED_CHARACTERS.search(source):  # checked here: once per source, not per render
        raise TemplateError.single(
            part, "the template contains private-use characters U+E000 to U+E00F", reason="invalid"
        )
    env = environment(kind)
    code = env.compile(source, name=part, filename=source_filename(part))
    return env.template_class.from_code(env, code, env.make_globals(None), None)


@dataclass(frozen=True)
class RenderedHtml:
    """An HTML part with its value markers: ``html`` is what the customer gets.

    ``skeleton`` is the same HTML with every printed value as a marker ``\\ue000N\\ue001``;
    ``escaped[N]`` is value N as it appears in the HTML, ``raw[N]`` as plain text. A part
    that had to be rendered plainly (``marked`` false) has no markers and empty lists.
    """

    skeleton: str
    escaped: tuple[str, ...]
    raw: tuple[str, ...]
    marked: bool = True

    @functools.cached_property
    def html(self) -> str:
        if not self.escaped:
            return self.skeleton
        escaped = self.escaped
        return MARKER.sub(lambda match: escaped[int(match.group(1))], self.skeleton)


#: Private-use characters the markers and body plans use (``markers.py``, ``body_plan.py``,
#: ``plaintext.py``); a template may not contain them.
_RESERVED_CHARACTERS = re.compile("[\ue000-\ue00f]")


def check_source(part: str, source: str, *, limits: RenderLimits = DEFAULT_LIMITS) -> Template:
    """Compile a part without rendering it (syntax, sandbox refusals, size): for saving templates.

    Raises :class:`TemplateError`; returns the compiled template (cached by source).
    """
    kind = PART_KINDS.get(part)
    if kind is None:
        raise ValueError(f"unknown message part {part!r}; expected one of {', '.join(PART_KINDS)}")
    if len(source) > limits.max_source_chars:
        raise TemplateError.single(
            part, f"the template is longer than {limits.max_source_chars:,} characters", reason="invalid"
        )
    try:
        return compiled(kind, part, source)
    except TemplateError:
        raise
    except RecursionError:
        raise TemplateError.single(
            part, "the template is nested too deeply to read", reason="syntax"
        ) from None
    except Exception as exc:
        raise TemplateError([problem_from_exception(exc, part)]) from None


def render_part(
    part: str, source: str, context: Mapping[str, Any], *, budget: RenderBudget, markers: bool = True
) -> str | RenderedHtml:
    """Render one part under ``budget``; every failure becomes a :class:`TemplateError`.

    The HTML part comes back as :class:`RenderedHtml`, the others as text. ``markers``
    false renders the HTML part plainly (the tests compare both ways).
    """
    template = check_source(part, source, limits=budget.limits)
    if part == "html" and not markers:
        return RenderedHtml(_generate(part, template, context, budget), (), (), marked=False)
    if part == "html":
        produced, items = budget.produced, budget.produced_items
        slots = ValueSlots()
        budget.slots = slots
        try:
            skeleton = _generate(part, template, context, budget)
        except PlainRenderNeeded:
            budget.produced, budget.produced_items = produced, items
            budget.slots = None
            return RenderedHtml(_generate(part, template, context, budget), (), (), marked=False)
        finally:
            budget.slots = None
        return RenderedHtml(skeleton, tuple(slots.escaped), tuple(slots.raw))
    return _generate(part, template, context, budget)


def _generate(part: str, template: Template, context: Mapping[str, Any], budget: RenderBudget) -> str:
    with budget_scope(budget):
        try:
            text = template.render(context)
        except Exception as exc:  # a broken template must never crash a send: report it
            raise TemplateError([problem_from_exception(exc, part)]) from None
    cap = budget.limits.output_limit(part)
    if len(text) > cap:  # what memory it took is bounded by max_produced_chars
        raise TemplateError.single(
            part, f"the {part} part is longer than {cap:,} characters", reason="output_limit"
        )
    return text


def render_parts(
    parts: Mapping[str, str], context: Mapping[str, Any], *, limits: RenderLimits = DEFAULT_LIMITS
) -> dict[str, str]:
    """Render several parts of one message under one deadline, collecting every problem.

    ``parts`` maps part names (``subject``, ``preheader``, ``html``, ``text``,
    ``push_title``, ``push_body``, ``push_url``, ``push_icon``) to template sources.
    Returns the rendered text of each part; raises one :class:`TemplateError` listing the
    problem of every broken part (a part after a time-limit breach is not tried).
    """
    return {
        part: value.html if isinstance(value, RenderedHtml) else value
        for part, value in render_message_parts(parts, context, limits=limits).items()
    }


def render_message_parts(
    parts: Mapping[str, str], context: Mapping[str, Any], *, limits: RenderLimits = DEFAULT_LIMITS
) -> dict[str, str | RenderedHtml]:
    """:func:`render_parts`, with the HTML part as :class:`RenderedHtml` for ``message.py``."""
    check_plain(context if type(context) is dict else dict(context))
    unknown = [part for part in parts if part not in PART_KINDS]
    if unknown:
        raise ValueError(f"unknown message part(s) {unknown}; expected some of {', '.join(PART_KINDS)}")
    budget = RenderBudget(limits, time.monotonic() + limits.time_limit, context)
    rendered: dict[str, str | RenderedHtml] = {}
    problems: list[TemplateProblem] = []
    for part, source in parts.items():
        try:
            rendered[part] = render_part(part, source, context, budget=budget)
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
