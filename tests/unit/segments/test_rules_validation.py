"""Rule validation: precise errors with JSON paths; references checked against the database."""

from __future__ import annotations

import pytest

from segments.models import Segment
from segments.rules import parse_rule, validate_rule
from segments.rules.parser import MAX_CONDITIONS, MAX_DEPTH
from segments.rules.validation import refresh_order


def errors(rule) -> list[tuple[str, str]]:
    return [(e.path, e.message) for e in parse_rule(rule).errors]


def only(rule) -> tuple[str, str]:
    found = errors(rule)
    assert len(found) == 1, found
    return found[0]


def test_a_valid_rule_has_no_errors():
    rule = {
        "all": [
            {"field": "customer.country", "op": "in", "value": ["GB", "IE"]},
            {"any": [{"field": "order.count", "where": {"within_days": 90}, "op": "gte", "value": 2}]},
            {"not": {"field": "consent.email", "op": "eq", "value": "withdrawn"}},
            {"field": "attributes.birthday", "type": "date", "op": "within_last_days", "value": 7},
        ]
    }
    assert errors(rule) == []


@pytest.mark.parametrize(
    ("rule", "path", "needle"),
    [
        ({"field": "customer.shoe_size", "op": "eq", "value": 1}, "$.field", "Unknown field"),
        ({"all": [{"field": "customer.country", "op": "gt", "value": "GB"}]}, "$.all[0].op", "not allowed"),
        ({"field": "customer.country", "op": "like", "value": "GB"}, "$.op", "Unknown operator"),
        ({"field": "customer.created_at", "op": "before", "value": "2025-13-40"}, "$.value", "Bad date"),
        ({"field": "order.count", "op": "gte", "value": "3"}, "$.value", "Expected a number"),
        ({"field": "order.count", "op": "gte", "value": 2.5}, "$.value", "whole number"),
        ({"field": "order.count", "op": "between", "value": [5, 1]}, "$.value", "low bound"),
        ({"field": "order.count", "op": "is_set", "value": 3}, "$.value", "takes no value"),
        ({"field": "customer.country", "op": "in", "value": []}, "$.value", "non-empty list"),
        ({"field": "consent.email", "op": "eq", "value": "yes"}, "$.value", "granted"),
        (
            {"field": "event.count", "where": {"type": "click"}, "op": "gte", "value": 1},
            "$.where.type",
            "event type",
        ),
        (
            {"field": "event.count", "where": {"colour": "red"}, "op": "gte", "value": 1},
            "$.where.colour",
            "Unknown qualifier",
        ),
        (
            {"field": "order.count", "where": {"since": "yesterday"}, "op": "gte", "value": 1},
            "$.where.since",
            "Bad date",
        ),
        (
            {"field": "customer.country", "where": {"type": "view"}, "op": "eq", "value": "GB"},
            "$.where",
            "no where",
        ),
        ({"field": "customer.country", "op": "eq", "valeu": "GB"}, "$", "Unknown key(s) valeu"),
        ({"field": "attributes.a b", "op": "eq", "value": "x"}, "$.field", "Attribute names"),
        ({"field": "attributes.x", "type": "list", "op": "eq", "value": "x"}, "$.type", "Attribute type"),
        (
            {"field": "customer.country", "type": "string", "op": "eq", "value": "GB"},
            "$.type",
            "Only attributes",
        ),
        ({"field": "segment", "op": "in", "value": ["vip"]}, "$.value[0]", "segment id"),
        ({"all": {"field": "customer.country"}}, "$.all", "list of rules"),
        ({"all": [], "any": []}, "$", "exactly one key"),
        ({"foo": 1}, "$", "Expected one of all, any, not or field"),
        ([], "$", "Expected an object"),
        (
            {"field": "order.last_at", "op": "within_last_days", "value": -1},
            "$.value",
            "whole number of days",
        ),
        ({"field": "customer.country", "op": "eq", "value": "x" * 600}, "$.value", "at most 500"),
    ],
)
def test_precise_errors(rule, path, needle):
    found_path, message = errors(rule)[0]
    assert found_path == path
    assert needle in message


def test_depth_and_size_limits():
    deep: dict = {"field": "customer.country", "op": "eq", "value": "GB"}
    for _ in range(MAX_DEPTH + 1):
        deep = {"not": deep}
    assert "Nested too deep" in only(deep)[1]
    wide = {"any": [{"field": "customer.country", "op": "eq", "value": "GB"}] * (MAX_CONDITIONS + 5)}
    path, message = only(wide)
    assert path == f"$.any[{MAX_CONDITIONS}]" and "Too many conditions" in message


@pytest.mark.django_db
def test_unknown_segment_and_program():
    found = validate_rule(
        {
            "all": [
                {"field": "segment", "op": "in", "value": [987654]},
                {"field": "loyalty.tier", "where": {"program": "nope"}, "op": "eq", "value": "Gold"},
            ]
        }
    )
    assert [(e.path, e.message) for e in found] == [
        ("$.all[0].value[0]", "Unknown segment 987654."),
        ("$.all[1].where.program", "Unknown loyalty program 'nope'."),
    ]


@pytest.mark.django_db
def test_cycles_are_refused_and_order_follows_dependencies():
    a = Segment.objects.create(name="A", rules={"all": []})
    b = Segment.objects.create(name="B", rules={"field": "segment", "op": "in", "value": [a.pk]})
    c = Segment.objects.create(name="C", rules={"field": "segment", "op": "not_in", "value": [b.pk]})
    assert refresh_order() == [a.pk, b.pk, c.pk]
    assert validate_rule({"field": "segment", "op": "in", "value": [a.pk]}, segment_id=a.pk)[0].message == (
        "A segment cannot refer to itself."
    )
    cyclic = validate_rule({"field": "segment", "op": "in", "value": [c.pk]}, segment_id=a.pk)
    assert len(cyclic) == 1
    assert cyclic[0].path == "$.value[0]"
    assert f"{a.pk} -> {c.pk} -> {b.pk} -> {a.pk}" in cyclic[0].message
