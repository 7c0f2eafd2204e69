"""The catalogue of what a rule can test: field names, their value types, operators and qualifiers.

Kept as data so validation, the compiler, the docs and the admin's field list agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Value types
STRING = "string"
NUMBER = "number"
INTEGER = "integer"
BOOLEAN = "boolean"
DATETIME = "datetime"
DATE_TEXT = "date"  # an ISO date kept as text in JSON attributes
CHOICE = "choice"
SEGMENT = "segment"

SET_OPS = ("is_set", "is_not_set")
OPERATORS: dict[str, tuple[str, ...]] = {
    STRING: ("eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with", *SET_OPS),
    NUMBER: ("eq", "neq", "gt", "gte", "lt", "lte", "between", "in", "not_in", *SET_OPS),
    INTEGER: ("eq", "neq", "gt", "gte", "lt", "lte", "between", "in", "not_in", *SET_OPS),
    BOOLEAN: ("eq", "neq", *SET_OPS),
    DATETIME: (
        "before",
        "after",
        "between",
        "within_last_days",
        "more_than_days_ago",
        "within_next_days",
        *SET_OPS,
    ),
    DATE_TEXT: ("before", "after", "between", "within_last_days", "more_than_days_ago", *SET_OPS),
    CHOICE: ("eq", "neq", "in", "not_in", *SET_OPS),
    SEGMENT: ("in", "not_in"),
}
ALL_OPERATORS = sorted({op for ops in OPERATORS.values() for op in ops})
DAY_OPS = ("within_last_days", "more_than_days_ago", "within_next_days")
ATTRIBUTE_TYPES = (STRING, NUMBER, BOOLEAN, DATE_TEXT)

EVENT_TYPES = ("view", "add_to_cart", "purchase", "search", "custom")
ORDER_STATUSES = ("placed", "paid", "fulfilled", "cancelled", "returned")
CONSENT_STATES = ("granted", "withdrawn", "pending", "none")
CHANNELS = ("email", "push", "sms")

# Qualifiers ("where") per family: name -> kind
EVENT_WHERE = {
    "type": "event_type",
    "name": "text",
    "sku": "text_list",
    "category": "text",
    "within_days": "days",
    "since": "date",
    "until": "date",
}
ORDER_WHERE = {
    "status": "status_list",
    "sku": "text_list",
    "category": "text",
    "within_days": "days",
    "since": "date",
    "until": "date",
}
PROGRAM_WHERE = {"program": "program"}
EXPIRING_WHERE = {"program": "program", "before": "date", "within_days": "days"}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    family: str
    help: str
    choices: tuple[str, ...] = ()
    where: dict[str, str] = field(default_factory=dict)
    column: str = ""


CUSTOMER_TEXT = ("external_id", "email", "phone", "first_name", "last_name", "locale", "timezone", "country")

FIELDS: dict[str, FieldSpec] = {}


def _add(spec: FieldSpec) -> None:
    FIELDS[spec.name] = spec


for _name in CUSTOMER_TEXT:
    _add(FieldSpec(f"customer.{_name}", STRING, "customer", f"The customer's {_name}", column=_name))
_add(
    FieldSpec(
        "customer.created_at", DATETIME, "customer", "When the customer was created", column="created_at"
    )
)
_add(FieldSpec("customer.updated_at", DATETIME, "customer", "Last profile change", column="updated_at"))
for _channel in CHANNELS:
    _add(
        FieldSpec(
            f"consent.{_channel}",
            CHOICE,
            "consent",
            f"Current {_channel} consent ('none' when never asked)",
            choices=CONSENT_STATES,
            column=_channel,
        )
    )
_add(FieldSpec("event.count", INTEGER, "event", "Number of matching events", where=EVENT_WHERE))
_add(FieldSpec("event.first_at", DATETIME, "event", "Time of the first matching event", where=EVENT_WHERE))
_add(FieldSpec("event.last_at", DATETIME, "event", "Time of the last matching event", where=EVENT_WHERE))
_add(FieldSpec("order.count", INTEGER, "order", "Number of matching orders", where=ORDER_WHERE))
_add(FieldSpec("order.revenue", NUMBER, "order", "Sum of the matching orders' totals", where=ORDER_WHERE))
_add(FieldSpec("order.aov", NUMBER, "order", "Average total of the matching orders", where=ORDER_WHERE))
_add(FieldSpec("order.first_at", DATETIME, "order", "First matching order", where=ORDER_WHERE))
_add(FieldSpec("order.last_at", DATETIME, "order", "Last matching order", where=ORDER_WHERE))
_add(FieldSpec("loyalty.program", STRING, "loyalty", "Slug of a program the customer belongs to"))
_add(FieldSpec("loyalty.tier", STRING, "loyalty", "Name of the customer's tier", where=PROGRAM_WHERE))
_add(
    FieldSpec(
        "loyalty.points_balance",
        INTEGER,
        "loyalty",
        "Points balance (summed over programs)",
        where=PROGRAM_WHERE,
    )
)
_add(
    FieldSpec(
        "loyalty.points_expiring",
        INTEGER,
        "loyalty",
        "Unspent points expiring before a date (or within N days)",
        where=EXPIRING_WHERE,
    )
)
_FEATURES = {
    "rfm_group": (STRING, "RFM group, e.g. Champions, At risk"),
    "rfm_r": (INTEGER, "Recency score 1-5"),
    "rfm_f": (INTEGER, "Frequency score 1-5"),
    "rfm_m": (INTEGER, "Monetary score 1-5"),
    "cluster": (INTEGER, "Behavioural cluster number"),
    "churn_probability": (NUMBER, "Probability of having churned, 0-1"),
    "p_alive": (NUMBER, "Probability of being alive (BG/NBD), 0-1"),
    "predicted_clv": (NUMBER, "Predicted customer lifetime value"),
    "expected_purchases_90d": (NUMBER, "Expected purchases in the next 90 days"),
    "recency_days": (INTEGER, "Days from the last purchase to the last analytics run"),
    "frequency": (INTEGER, "Number of orders (as of the last analytics run)"),
    "monetary": (NUMBER, "Net revenue (as of the last analytics run)"),
    "average_order_value": (NUMBER, "Average order value (as of the last analytics run)"),
}
for _name, (_type, _help) in _FEATURES.items():
    _add(FieldSpec(f"features.{_name}", _type, "features", _help, column=_name))
# Short names for the analytics outputs the issue names.
for _alias, _target in {
    "rfm.group": "rfm_group",
    "cluster": "cluster",
    "churn_probability": "churn_probability",
    "predicted_clv": "predicted_clv",
}.items():
    _base = FIELDS[f"features.{_target}"]
    _add(FieldSpec(_alias, _base.type, "features", _base.help, column=_target))
_add(FieldSpec("segment", SEGMENT, "segment", "Current membership of other segments (ids)"))

ATTRIBUTE_PREFIX = "attributes."
