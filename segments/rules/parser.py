"""Parse rule JSON into a small typed tree, collecting every error with its JSON path.

Pure Python (no database): the references a rule makes to other segments and loyalty programs
are collected here and checked by `validation.validate_rule`.

A node is one of
    {"all": [node, ...]}   every child matches (an empty list matches everyone)
    {"any": [node, ...]}   at least one child matches
    {"not": node}
    {"field": "...", "op": "...", "value": ..., "where": {...}, "type": "..."}
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from segments.rules import fields as f
from segments.rules.errors import RuleError

MAX_DEPTH = 10
MAX_CONDITIONS = 200
MAX_LIST = 1000
MAX_TEXT = 500
MAX_DAYS = 36_500
MAX_NUMBER = 1e15
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
CONDITION_KEYS = {"field", "op", "value", "where", "type"}


@dataclass(frozen=True)
class Group:
    kind: str  # all | any
    children: tuple


@dataclass(frozen=True)
class Not:
    child: Any


@dataclass(frozen=True)
class Condition:
    field: str
    type: str
    family: str
    op: str
    value: Any = None
    where: dict = field(default_factory=dict)
    column: str = ""
    attribute_path: tuple[str, ...] = ()
    path: str = ""


@dataclass
class ParseResult:
    node: Any
    errors: list[RuleError]
    segment_refs: dict[int, str]  # segment id -> path of the first reference
    program_refs: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.errors


class _Parser:
    def __init__(self):
        self.errors: list[RuleError] = []
        self.conditions = 0
        self.segment_refs: dict[int, str] = {}
        self.program_refs: dict[str, str] = {}

    def error(self, path: str, message: str) -> None:
        self.errors.append(RuleError(path, message))

    # --- tree -----------------------------------------------------------------------------
    def node(self, raw: Any, path: str, depth: int):
        if depth > MAX_DEPTH:
            self.error(path, f"Nested too deep: at most {MAX_DEPTH} levels of groups.")
            return None
        if not isinstance(raw, dict):
            self.error(path, "Expected an object: a group (all, any, not) or a condition (field, op).")
            return None
        group_keys = [k for k in ("all", "any", "not") if k in raw]
        if group_keys:
            if len(raw) != 1:
                extra = sorted(str(k) for k in raw if k != group_keys[0])
                self.error(
                    path, f"A group has exactly one key ({group_keys[0]}); unexpected: {', '.join(extra)}."
                )
                return None
            key = group_keys[0]
            if key == "not":
                child = self.node(raw["not"], f"{path}.not", depth + 1)
                return Not(child) if child is not None else None
            items = raw[key]
            if not isinstance(items, list):
                self.error(f"{path}.{key}", "Expected a list of rules.")
                return None
            children = []
            for i, item in enumerate(items):
                child = self.node(item, f"{path}.{key}[{i}]", depth + 1)
                if child is not None:
                    children.append(child)
            return Group(key, tuple(children))
        if "field" in raw:
            return self.condition(raw, path)
        self.error(path, "Expected one of all, any, not or field.")
        return None

    # --- conditions -----------------------------------------------------------------------
    def condition(self, raw: dict, path: str):
        self.conditions += 1
        if self.conditions == MAX_CONDITIONS + 1:
            self.error(path, f"Too many conditions: at most {MAX_CONDITIONS}.")
        if self.conditions > MAX_CONDITIONS:
            return None
        unknown = sorted(str(k) for k in raw if k not in CONDITION_KEYS)
        if unknown:
            self.error(
                path, f"Unknown key(s) {', '.join(unknown)}; a condition has field, op, value, where, type."
            )
        name = raw.get("field")
        if not isinstance(name, str):
            self.error(f"{path}.field", "Expected a field name (text).")
            return None
        spec, attribute_path, type_ = self.field_spec(raw, name, path)
        if spec is None:
            return None
        op = raw.get("op")
        allowed = f.OPERATORS[type_]
        if not isinstance(op, str):
            self.error(f"{path}.op", f"Expected an operator: one of {', '.join(allowed)}.")
            return None
        if op not in allowed:
            known = "Unknown operator" if op not in f.ALL_OPERATORS else "Operator not allowed"
            self.error(f"{path}.op", f"{known} {op!r} for {name} ({type_}); use one of {', '.join(allowed)}.")
            return None
        if "where" in raw and not spec.where:
            self.error(f"{path}.where", f"{name} takes no where qualifiers.")
            return None
        where = self.where(raw.get("where", {}), spec, f"{path}.where")
        value = self.value(raw, type_, op, spec, f"{path}.value")
        if where is None or value is _INVALID:
            return None
        return Condition(
            field=name,
            type=type_,
            family=spec.family,
            op=op,
            value=value,
            where=where,
            column=spec.column,
            attribute_path=attribute_path,
            path=path,
        )

    def field_spec(self, raw: dict, name: str, path: str):
        declared = raw.get("type")
        if name.startswith(f.ATTRIBUTE_PREFIX):
            keys = name[len(f.ATTRIBUTE_PREFIX) :].split(".")
            if not keys or len(keys) > 5 or not all(ATTRIBUTE_KEY.match(k) for k in keys):
                self.error(
                    f"{path}.field",
                    "Attribute names are attributes.<key>[.<key>…] with keys of letters, digits, _ or - "
                    "(at most 5 levels).",
                )
                return None, (), ""
            if declared is None:
                value = raw.get("value")
                sample = value[0] if isinstance(value, list) and value else value
                if isinstance(sample, bool):
                    declared = f.BOOLEAN
                elif isinstance(sample, int | float):
                    declared = f.NUMBER
                elif raw.get("op") in f.OPERATORS[f.DATE_TEXT] and raw.get("op") not in f.OPERATORS[f.STRING]:
                    declared = f.DATE_TEXT
                else:
                    declared = f.STRING
            if declared not in f.ATTRIBUTE_TYPES:
                self.error(f"{path}.type", f"Attribute type must be one of {', '.join(f.ATTRIBUTE_TYPES)}.")
                return None, (), ""
            spec = f.FieldSpec(name, declared, "attribute", "JSON attribute")
            return spec, tuple(keys), declared
        if declared is not None:
            self.error(f"{path}.type", "Only attributes.* conditions take a type.")
            return None, (), ""
        spec = f.FIELDS.get(name)
        if spec is None:
            self.error(f"{path}.field", f"Unknown field {name!r}; see docs/segment-rules.md for the list.")
            return None, (), ""
        return spec, (), spec.type

    # --- values ---------------------------------------------------------------------------
    def value(self, raw: dict, type_: str, op: str, spec: f.FieldSpec, path: str):
        present = "value" in raw and raw["value"] is not None
        value = raw.get("value")
        if op in f.SET_OPS:
            if present:
                self.error(path, f"{op} takes no value.")
                return _INVALID
            return None
        if not present:
            self.error(path, f"{op} needs a value.")
            return _INVALID
        if type_ == f.SEGMENT:
            return self.segment_ids(value, path)
        if op in f.DAY_OPS:
            return self.days(value, path)
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                self.error(path, "Expected a non-empty list.")
                return _INVALID
            if len(value) > MAX_LIST:
                self.error(path, f"At most {MAX_LIST} values.")
                return _INVALID
            out = [self.scalar(v, type_, spec, f"{path}[{i}]") for i, v in enumerate(value)]
            return _INVALID if _INVALID in out else tuple(out)
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                self.error(path, "Expected a list of two bounds [low, high].")
                return _INVALID
            low = self.scalar(value[0], type_, spec, f"{path}[0]")
            high = self.scalar(value[1], type_, spec, f"{path}[1]")
            if _INVALID in (low, high):
                return _INVALID
            if low > high:
                self.error(path, "The low bound is above the high bound.")
                return _INVALID
            return (low, high)
        return self.scalar(value, type_, spec, path)

    def scalar(self, value: Any, type_: str, spec: f.FieldSpec, path: str):
        if type_ in (f.NUMBER, f.INTEGER):
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.error(path, "Expected a number.")
                return _INVALID
            if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_NUMBER:
                self.error(path, "Number out of range.")
                return _INVALID
            if type_ == f.INTEGER and isinstance(value, float) and not value.is_integer():
                self.error(path, "Expected a whole number.")
                return _INVALID
            return int(value) if type_ == f.INTEGER else value
        if type_ == f.BOOLEAN:
            if not isinstance(value, bool):
                self.error(path, "Expected true or false.")
                return _INVALID
            return value
        if type_ in (f.DATETIME, f.DATE_TEXT):
            parsed = parse_when(value)
            if parsed is None:
                self.error(path, "Bad date: use ISO 8601, e.g. 2025-03-31 or 2025-03-31T12:00:00Z.")
                return _INVALID
            return parsed
        if type_ == f.CHOICE:
            if value not in spec.choices:
                self.error(path, f"Expected one of {', '.join(spec.choices)}.")
                return _INVALID
            return value
        return self.text(value, path)

    def text(self, value: Any, path: str):
        if not isinstance(value, str):
            self.error(path, "Expected text.")
            return _INVALID
        if len(value) > MAX_TEXT or "\x00" in value:
            self.error(path, f"Text must be at most {MAX_TEXT} characters, without NUL.")
            return _INVALID
        return value

    def days(self, value: Any, path: str):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS:
            self.error(path, f"Expected a whole number of days from 0 to {MAX_DAYS}.")
            return _INVALID
        return value

    def segment_ids(self, value: Any, path: str):
        if not isinstance(value, list) or not value or len(value) > 100:
            self.error(path, "Expected a non-empty list of segment ids (at most 100).")
            return _INVALID
        ids = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < 2**62:
                self.error(f"{path}[{i}]", "Expected a segment id (a positive whole number).")
                return _INVALID
            ids.append(item)
            self.segment_refs.setdefault(item, f"{path}[{i}]")
        return tuple(ids)

    # --- qualifiers -----------------------------------------------------------------------
    def where(self, raw: Any, spec: f.FieldSpec, path: str):
        if not isinstance(raw, dict):
            self.error(path, "Expected an object of qualifiers.")
            return None
        out: dict[str, Any] = {}
        ok = True
        for key, value in raw.items():
            kind = spec.where.get(key)
            sub = f"{path}.{key}"
            if kind is None:
                self.error(sub, f"Unknown qualifier for {spec.name}; use {', '.join(spec.where)}.")
                ok = False
                continue
            parsed = self.qualifier(kind, value, sub)
            if parsed is _INVALID:
                ok = False
            else:
                out[key] = parsed
        if ok and "within_days" in out and ("since" in out or "before" in out):
            self.error(path, "Use within_days or a date bound, not both.")
            ok = False
        if ok and "since" in out and "until" in out and out["since"] > out["until"]:
            self.error(path, "since is after until.")
            ok = False
        return out if ok else None

    def qualifier(self, kind: str, value: Any, path: str):
        if kind == "days":
            return self.days(value, path)
        if kind == "date":
            parsed = parse_when(value)
            if parsed is None:
                self.error(path, "Bad date: use ISO 8601, e.g. 2025-03-31.")
                return _INVALID
            return parsed
        if kind == "event_type":
            values = value if isinstance(value, list) else [value]
            if not values or any(v not in f.EVENT_TYPES for v in values):
                self.error(path, f"Expected an event type (or list) from {', '.join(f.EVENT_TYPES)}.")
                return _INVALID
            return tuple(values)
        if kind == "status_list":
            values = value if isinstance(value, list) else [value]
            if not values or any(v not in f.ORDER_STATUSES for v in values):
                self.error(path, f"Expected an order status (or list) from {', '.join(f.ORDER_STATUSES)}.")
                return _INVALID
            return tuple(values)
        if kind == "text_list":
            values = value if isinstance(value, list) else [value]
            if not values or len(values) > MAX_LIST:
                self.error(path, f"Expected text or a list of 1 to {MAX_LIST} texts.")
                return _INVALID
            out = [self.text(v, path) for v in values]
            return _INVALID if _INVALID in out else tuple(out)
        if kind == "program":
            text = self.text(value, path)
            if text is not _INVALID:
                self.program_refs.setdefault(text, path)
            return text
        return self.text(value, path)


class _Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


_INVALID = _Invalid()


def parse_when(value: Any) -> datetime | None:
    """An ISO date or datetime as an aware UTC datetime (a date is its midnight, UTC)."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def parse_rule(rule: Any) -> ParseResult:
    parser = _Parser()
    node = parser.node(rule, "$", 0)
    return ParseResult(node, parser.errors, parser.segment_refs, parser.program_refs)


def segment_references(rule: Any) -> set[int]:
    """Segment ids a stored rule mentions (for the dependency graph); tolerant of bad rules."""
    found: set[int] = set()

    def walk(node: Any, depth: int) -> None:
        if depth > MAX_DEPTH + 2:
            return
        if isinstance(node, dict):
            if node.get("field") == "segment" and isinstance(node.get("value"), list):
                found.update(v for v in node["value"] if isinstance(v, int) and not isinstance(v, bool))
            for key in ("all", "any"):
                if isinstance(node.get(key), list):
                    for child in node[key]:
                        walk(child, depth + 1)
            if "not" in node:
                walk(node["not"], depth + 1)

    walk(rule, 0)
    return found
