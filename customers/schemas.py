"""Row schemas for what integrations send about customers: profiles, events, orders.

Shared by the bulk API, the single-record API and the CSV importers (see core.rows).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from core import rows as r
from customers.models import Channel, ConsentAction, EventType, Order, OrderLine

_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


_text16 = r.text(16)


def locale(value: Any) -> str:
    result = _text16(value)
    if result and not _LOCALE.match(result):
        raise r.FieldInvalid("Use a language tag such as en or en-GB.")
    return result


_text45 = r.text(45)


def ip_address(value: Any) -> str:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_ipv46_address

    result = _text45(value)
    try:
        validate_ipv46_address(result)
    except ValidationError:
        raise r.FieldInvalid("Enter a valid IPv4 or IPv6 address.") from None
    return result


CONSENT_DECISION = r.RowSchema(
    name="consent decision",
    fields={
        "channel": r.Field(r.choice(Channel.values), required=True),
        "action": r.Field(r.choice([ConsentAction.GRANTED, ConsentAction.WITHDRAWN]), required=True),
        "source": r.Field(r.text(64, blank=False)),
        "occurred_at": r.Field(r.moment),
        "ip": r.Field(ip_address, nullable=True),
    },
)

# Profile fields an upsert may set, in the order of the database columns it writes.
PROFILE_FIELDS = ("email", "phone", "first_name", "last_name", "locale", "timezone", "country", "attributes")

CUSTOMER = r.RowSchema(
    name="customer",
    fields={
        "external_id": r.Field(r.identifier(191), required=True),
        "email": r.Field(r.email),
        "phone": r.Field(r.text(32)),
        "first_name": r.Field(r.text(100)),
        "last_name": r.Field(r.text(100)),
        "locale": r.Field(locale),
        "timezone": r.Field(r.timezone_name),
        "country": r.Field(r.country),
        "attributes": r.Field(r.json_object),
        "consent": r.Field(r.list_of(CONSENT_DECISION, max_items=6)),
    },
)

EVENT = r.RowSchema(
    name="event",
    fields={
        "idempotency_key": r.Field(r.text(200, blank=False), required=True),
        "customer": r.Field(r.identifier(191), required=True),
        "type": r.Field(r.choice(EventType.values), required=True),
        "name": r.Field(r.text(64)),
        "product": r.Field(r.identifier(64), nullable=True),
        "quantity": r.Field(r.integer(min_value=-1_000_000, max_value=1_000_000)),
        "value": r.Field(r.decimal(max_digits=12, decimal_places=2), nullable=True),
        "properties": r.Field(r.json_object),
        "occurred_at": r.Field(r.moment, required=True),
    },
    extra_checks=[
        lambda row: (
            [("name", "A custom event needs a name.")]
            if row["type"] == EventType.CUSTOM and not row.get("name")
            else []
        )
    ],
)


def _line_sign(line: dict[str, Any]) -> list[tuple[str, str]]:
    kind = line.get("kind")
    quantity = line["quantity"]
    if kind is None:
        return []
    if kind == OrderLine.Kind.SALE and quantity < 0:
        return [
            ("quantity", "A sale line needs a positive quantity; returns and cancellations are negative.")
        ]
    if kind != OrderLine.Kind.SALE and quantity > 0:
        return [("quantity", f"A {kind} line needs a negative quantity.")]
    return []


ORDER_LINE = r.RowSchema(
    name="order line",
    fields={
        "sku": r.Field(r.identifier(64), required=True),
        "quantity": r.Field(r.integer(min_value=-1_000_000, max_value=1_000_000), required=True),
        "unit_price": r.Field(
            r.decimal(max_digits=12, decimal_places=2, min_value=Decimal(0)), required=True
        ),
        "kind": r.Field(r.choice(OrderLine.Kind.values)),
    },
    extra_checks=[
        lambda line: [("quantity", "Must not be zero.")] if line["quantity"] == 0 else [],
        _line_sign,
    ],
)

ORDER = r.RowSchema(
    name="order",
    fields={
        "external_id": r.Field(r.identifier(191), required=True),
        "customer": r.Field(r.identifier(191), required=True),
        "placed_at": r.Field(r.moment, required=True),
        "currency": r.Field(r.currency),
        "status": r.Field(r.choice(Order.Status.values)),
        "attributes": r.Field(r.json_object),
        "lines": r.Field(r.list_of(ORDER_LINE, min_items=1, max_items=500), required=True),
    },
)
