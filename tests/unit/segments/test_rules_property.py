"""Property: whatever JSON a client sends, validation answers with errors (never an exception),
and a rule that validates compiles to SQL PostgreSQL accepts."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.rules import compile_rule, parse_rule
from segments.rules.compiler import matching_customers
from segments.rules.fields import ALL_OPERATORS, FIELDS

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "2025-01-31",
            "2025-01-31T10:00:00Z",
            "granted",
            "view",
            "GB",
            "0001-01-01",
            "9999-12-31T23:59:59-05:00",
        ]
    ),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
where = st.dictionaries(
    st.sampled_from(
        [
            "type",
            "sku",
            "category",
            "within_days",
            "since",
            "until",
            "status",
            "program",
            "before",
            "name",
            "x",
        ]
    ),
    values,
    max_size=3,
)
field_names = st.one_of(
    st.sampled_from(sorted(FIELDS)),
    st.sampled_from(["attributes.vip", "attributes.a.b", "attributes.", "nope"]),
)
conditions = st.fixed_dictionaries(
    {"field": field_names, "op": st.sampled_from([*ALL_OPERATORS, "bogus"])},
    optional={
        "value": values,
        "where": where,
        "type": st.sampled_from(["string", "number", "boolean", "date", "x"]),
    },
)


def _value_for(type_: str, op: str):
    dates = st.dates(min_value=__import__("datetime").date(1, 1, 2)).map(lambda d: d.isoformat())
    base = {
        "string": st.text(max_size=6),
        "number": st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6)),
        "integer": st.integers(-5, 1000),
        "boolean": st.booleans(),
        "datetime": dates,
        "date": dates,
        "choice": st.sampled_from(["granted", "withdrawn", "pending", "none"]),
        "segment": st.lists(st.integers(1, 5), min_size=1, max_size=2),
    }[type_]
    if type_ == "segment":
        return base
    if op in ("is_set", "is_not_set"):
        return st.none()
    if op in ("within_last_days", "more_than_days_ago", "within_next_days"):
        return st.integers(0, 40000)
    if op in ("in", "not_in"):
        return st.lists(base, min_size=1, max_size=3)
    if op == "between":
        return st.lists(base, min_size=2, max_size=2).map(sorted)
    return base


@st.composite
def typed_conditions(draw):
    from segments.rules.fields import OPERATORS

    name = draw(st.sampled_from([*sorted(FIELDS), "attributes.a", "attributes.b.c"]))
    if name.startswith("attributes."):
        type_ = draw(st.sampled_from(["string", "number", "boolean", "date"]))
        out = {"field": name, "type": type_}
    else:
        type_ = FIELDS[name].type
        out = {"field": name}
    op = draw(st.sampled_from(OPERATORS[type_]))
    out["op"] = op
    value = draw(_value_for(type_, op))
    if value is not None:
        out["value"] = value
    if FIELDS.get(name) is not None and FIELDS[name].where and draw(st.booleans()):
        out["where"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "within_days": st.integers(0, 400),
                    "type": st.sampled_from(["view", "purchase"]),
                    "sku": st.text(max_size=4),
                    "category": st.text(max_size=4),
                },
            ).map(lambda d: {k: v for k, v in d.items() if k in FIELDS[name].where})
        )
    return out


rules = st.recursive(
    st.one_of(
        conditions,
        typed_conditions(),
        typed_conditions(),
        scalars,
        st.dictionaries(st.text(max_size=5), scalars, max_size=2),
    ),
    lambda children: st.one_of(
        st.fixed_dictionaries({"all": st.lists(children, max_size=4)}),
        st.fixed_dictionaries({"any": st.lists(children, max_size=4)}),
        st.fixed_dictionaries({"not": children}),
        st.lists(children, max_size=2),
    ),
    max_leaves=12,
)

well_formed = st.recursive(
    typed_conditions(),
    lambda children: st.one_of(
        st.fixed_dictionaries({"all": st.lists(children, max_size=3)}),
        st.fixed_dictionaries({"any": st.lists(children, max_size=3)}),
        st.fixed_dictionaries({"not": children}),
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(rules)
def test_parsing_never_raises(rule):
    result = parse_rule(rule)
    for error in result.errors:
        assert error.path.startswith("$") and error.message
    if result.ok:
        compile_rule(rule)


@pytest.mark.django_db
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(well_formed)
def test_valid_rules_run_on_postgresql(rule):
    if parse_rule(rule).ok:
        matching_customers(rule).count()
        matching_customers(rule, scope=[1, 2]).exists()
