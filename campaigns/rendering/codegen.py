"""Code generation for marketer templates: loops, concatenation, literal output, comparisons and
slices go through the environment (see environment.py for the limits they enforce)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator, Frame, operators, optimizeconst

from campaigns.rendering.limits import active_budget
from campaigns.rendering.loader import ShippedTemplates
from campaigns.rendering.markers import MARK_OPEN, inspected_captured_output

# Code generation: loops, concatenation, literal output, comparisons and slices go through
# the environment too

LOOP_GUARD = "_loop_guard"


class GuardedLoop:
    """Wraps a ``{% for %}`` iterable: every iteration checks the deadline and counts the
    loop body's literal text (an upper bound computed when the template was compiled)."""

    __slots__ = ("_iterable", "literal_per_item")

    def __init__(self, iterable: Iterable[Any], literal_per_item: int = 0) -> None:
        if isinstance(iterable, str) and MARK_OPEN in iterable:
            inspected_captured_output()
        self._iterable = iterable
        self.literal_per_item = literal_per_item

    def __iter__(self) -> Iterator[Any]:
        budget = active_budget()
        tick = budget.tick
        per_item = self.literal_per_item
        cap = budget.limits.max_produced_chars
        for item in self._iterable:
            tick()
            if per_item:
                budget.produced += per_item
                if budget.produced > cap:
                    budget.add_produced(0)  # raises with the message
            yield item

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]


def literal_size(body: Iterable[nodes.Node], shipped: Mapping[str, str]) -> int:
    """Upper bound of the literal text one pass over ``body`` outputs: its text, nested
    loops' text once (they count their own repeats), and whole shipped templates it includes.

    Why this is enough to bound memory: every buffer Jinja joins (a macro's, a block's, the
    output) holds values (counted when printed), results of calls (counted when returned)
    and literal text -- counted per loop pass here, or else at most the template source
    once per active call.
    """
    largest = max((len(source) for source in shipped.values()), default=0)
    total = 0
    for node in body:
        for found in (node, *node.find_all((nodes.TemplateData, nodes.Include))):
            if isinstance(found, nodes.TemplateData):
                total += len(found.data)
            elif not isinstance(found, nodes.Include):
                continue
            elif isinstance(found.template, nodes.Const) and isinstance(found.template.value, str):
                total += len(shipped.get(found.template.value, ""))
            else:
                total += largest
    return total


class GuardedCodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for modifier in node.find_all((nodes.EvalContextModifier, nodes.ScopedEvalContextModifier)):
            if any(keyword.key == "autoescape" for keyword in modifier.options):
                raise TemplateSyntaxError(
                    "autoescape cannot be switched in templates; customer data is always escaped in HTML",
                    modifier.lineno,
                    self.name,
                    self.filename,
                )
        loader = self.environment.loader
        shipped = loader.sources if isinstance(loader, ShippedTemplates) else {}
        for loop in node.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Filter) and loop.iter.name == LOOP_GUARD):
                per_item = nodes.Const(literal_size([*loop.body, *loop.else_], shipped))
                loop.iter = nodes.Filter(
                    loop.iter, LOOP_GUARD, [per_item], [], None, None, lineno=loop.iter.lineno
                )
        super().visit_Template(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
        self.write(f"environment.bounded_concat({join}, (")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")

    # Output in HTML: ``environment.finalize_html(x)`` escapes (or marks) the value itself,
    # instead of Jinja's ``escape(environment.finalize(x))``: one call, no second Markup.

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.autoescape:
            self.write("environment.finalize_html(")
        else:
            super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.autoescape:
            self.write(")")
        else:
            super()._output_child_post(node, frame, finalize)

    # Where captured HTML output (which may hold value markers) could be looked inside
    # without a hook of its own. Only the HTML environment renders with markers.

    def _observed(self, node: nodes.Expr, frame: Frame) -> None:
        if frame.eval_ctx.autoescape:
            self.write("environment.observed(")
            self.visit(node, frame)
            self.write(")")
        else:
            self.visit(node, frame)

    @optimizeconst
    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("(")
        self._observed(node.expr, frame)
        for operand in node.ops:
            self.write(f" {operators[operand.op]} ")
            self._observed(operand.expr, frame)
        self.write(")")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if isinstance(node.arg, nodes.Slice):  # Jinja's own code bypasses getitem for slices
            self._observed(node.node, frame)
            self.write("[")
            self.visit(node.arg, frame)
            self.write("]")
        else:
            super().visit_Getitem(node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":
            super().visit_Tuple(node, frame)
            return
        self.write("(")
        for item in node.items:
            self._observed(item, frame)
            self.write(", ")
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("[")
        for item in node.items:
            self._observed(item, frame)
            self.write(", ")
        self.write("]")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("{")
        for pair in node.items:
            self._observed(pair.key, frame)
            self.write(": ")
            self._observed(pair.value, frame)
            self.write(", ")
        self.write("}")
