"""What a GDPR export contains and what an erasure scrubs, app by app.

Each app that stores something about a customer registers an export section and, when it keeps
personal data, an erasure step, from its AppConfig.ready():

    from customers.gdpr import register_export_section, register_erasure_step
    register_export_section("messages", lambda *, customer: [...])
    register_erasure_step("messages", lambda *, customer: ...)

so the export stays complete as apps are added, without this module importing them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Model

ExportSection = Callable[..., Any]
ErasureStep = Callable[..., None]

_EXPORT_SECTIONS: dict[str, ExportSection] = {}
_ERASURE_STEPS: dict[str, ErasureStep] = {}


def register_export_section(name: str, section: ExportSection) -> None:
    _EXPORT_SECTIONS[name] = section


def register_erasure_step(name: str, step: ErasureStep) -> None:
    _ERASURE_STEPS[name] = step


def export_sections(*, customer) -> dict[str, Any]:
    export: dict[str, Any] = {"format": "reachly.customer-export.v1"}
    for name, section in _EXPORT_SECTIONS.items():
        export[name] = section(customer=customer)
    return export


def run_erasure_steps(*, customer) -> None:
    for step in _ERASURE_STEPS.values():
        step(customer=customer)


def plain(instance: Model, fields: list[str]) -> dict[str, Any]:
    """A JSON-ready dict of some model fields (dates as ISO strings, decimals as strings)."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(instance, name)
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif value.__class__.__name__ == "Decimal":
            value = str(value)
        out[name] = value
    return out


# --- the customers app's own sections ------------------------------------------------------------


def _profile(*, customer) -> dict[str, Any]:
    return plain(
        customer,
        [
            "external_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "locale",
            "timezone",
            "country",
            "attributes",
            "created_at",
            "updated_at",
            "deleted_at",
            "erased_at",
        ],
    )


def _consent(*, customer) -> dict[str, Any]:
    return {
        "current": [
            plain(state, ["channel", "status", "source", "changed_at"])
            for state in customer.consents.order_by("channel")
        ],
        "history": [
            plain(record, ["channel", "action", "source", "ip", "occurred_at", "recorded_at", "note"])
            for record in customer.consent_records.order_by("occurred_at", "id")
        ],
    }


def _push_subscriptions(*, customer) -> list[dict[str, Any]]:
    return [
        plain(sub, ["kind", "endpoint", "active", "created_at"])
        for sub in customer.push_subscriptions.order_by("id")
    ]


def _orders(*, customer) -> list[dict[str, Any]]:
    orders = []
    for order in customer.orders.prefetch_related("lines").order_by("placed_at", "id"):
        item = plain(order, ["external_id", "status", "placed_at", "currency", "total", "attributes"])
        item["lines"] = [
            plain(line, ["line_no", "sku", "kind", "quantity", "unit_price"])
            for line in sorted(order.lines.all(), key=lambda line: line.line_no)
        ]
        orders.append(item)
    return orders


def _events(*, customer) -> list[dict[str, Any]]:
    return [
        {
            **plain(
                event, ["type", "name", "quantity", "value", "properties", "occurred_at", "idempotency_key"]
            ),
            "product": event.product.sku if event.product_id else None,
        }
        for event in customer.events.select_related("product").order_by("occurred_at", "id")
    ]


def _scrub_customer_rows(*, customer) -> None:
    """Personal data in rows around the customer: devices, free-form properties, IP addresses."""
    customer.push_subscriptions.all().delete()
    customer.events.exclude(properties={}).update(properties={})
    customer.orders.exclude(attributes={}).update(attributes={})
    # The consent ledger is append-only for the application, but an erasure must remove the IP
    # addresses it holds; a queryset update is the one sanctioned way to do that.
    customer.consent_records.exclude(ip=None, note="").update(ip=None, note="")


register_export_section("profile", _profile)
register_export_section("consent", _consent)
register_export_section("push_subscriptions", _push_subscriptions)
register_export_section("orders", _orders)
register_export_section("events", _events)
register_erasure_step("customer_rows", _scrub_customer_rows)
