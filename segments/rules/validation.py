"""Validate a rule against the database: referenced segments and programs exist, no cycles."""

from __future__ import annotations

from typing import Any

from segments.rules.errors import RuleError
from segments.rules.parser import ParseResult, parse_rule, segment_references


def dependency_graph(*, replace: dict[int, Any] | None = None) -> dict[int, set[int]]:
    """Segment id -> ids its rule references, for every dynamic segment (one query)."""
    from segments.models import Segment

    graph = {
        pk: segment_references(rules)
        for pk, rules in Segment.objects.filter(kind=Segment.Kind.DYNAMIC).values_list("pk", "rules")
    }
    for pk, rules in (replace or {}).items():
        graph[pk] = segment_references(rules)
    return graph


def find_cycle(graph: dict[int, set[int]], start: int) -> list[int] | None:
    """A path start -> ... -> start through the graph, or None."""
    stack: list[tuple[int, list[int]]] = [(start, [start])]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def check_rule(rule: Any, *, segment_id: int | None = None) -> ParseResult:
    """Parse and check references. `segment_id` is the segment the rule belongs to (for cycles)."""
    from loyalty.models import LoyaltyProgram
    from segments.models import Segment

    result = parse_rule(rule)
    if result.segment_refs:
        known = dict(Segment.objects.filter(pk__in=list(result.segment_refs)).values_list("pk", "kind"))
        for ref, path in result.segment_refs.items():
            if ref not in known:
                result.errors.append(RuleError(path, f"Unknown segment {ref}."))
            elif ref == segment_id:
                result.errors.append(RuleError(path, "A segment cannot refer to itself."))
        if segment_id is not None and not result.errors:
            graph = dependency_graph(replace={segment_id: rule})
            cycle = find_cycle(graph, segment_id)
            if cycle:
                first = next(iter(result.segment_refs.values()))
                chain = " -> ".join(str(c) for c in cycle)
                result.errors.append(RuleError(first, f"Cyclic segment references: {chain}."))
    if result.program_refs:
        known_programs = set(
            LoyaltyProgram.objects.filter(slug__in=list(result.program_refs)).values_list("slug", flat=True)
        )
        for slug, path in result.program_refs.items():
            if slug not in known_programs:
                result.errors.append(RuleError(path, f"Unknown loyalty program {slug!r}."))
    return result


def validate_rule(rule: Any, *, segment_id: int | None = None) -> list[RuleError]:
    return check_rule(rule, segment_id=segment_id).errors


def refresh_order(segment_ids: list[int] | None = None) -> list[int]:
    """Dynamic segments in dependency order (referenced ones first); cycles are broken by id."""
    graph = dependency_graph()
    wanted = set(graph) if segment_ids is None else set(segment_ids) & set(graph)
    order: list[int] = []
    state: dict[int, int] = {}

    def visit(node: int) -> None:
        stack = [(node, iter(sorted(graph.get(node, ()))))]
        state[node] = 1
        while stack:
            current, children = stack[-1]
            advanced = False
            for child in children:
                if child in graph and state.get(child) is None:
                    state[child] = 1
                    stack.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                state[current] = 2
                order.append(current)

    for pk in sorted(graph):
        if state.get(pk) is None:
            visit(pk)
    return [pk for pk in order if pk in wanted]
