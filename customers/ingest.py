"""Event and order ingest: idempotent bulk writes that award points and tell other apps.

Keyword-only functions (re-exported by customers.services, where callers find them). Every row is
validated first and nothing is written when a row is bad, unless the caller asked for
`partial=True`; each call is one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction

from core.bulk import BulkResult
from core.hashing import payload_digest
from core.rows import RowError, mark_duplicates, validate_rows
from customers import schemas, signals
from customers.models import (
    Customer,
    Event,
    Order,
    OrderLine,
)


def _customer_ids(external_ids: Iterable[str]) -> dict[str, int]:
    wanted = list(set(external_ids))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 5000):
        found.update(
            Customer.objects.filter(external_id__in=wanted[start : start + 5000]).values_list(
                "external_id", "pk"
            )
        )
    return found


def _product_ids(skus: Iterable[str]) -> dict[str, int]:
    from catalog.models import Product

    wanted = list(set(skus))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 5000):
        found.update(Product.objects.filter(sku__in=wanted[start : start + 5000]).values_list("sku", "pk"))
    return found


def _conflict(index: int, field: str, what: str) -> RowError:
    return RowError(
        index,
        field,
        f"This {what} was already received with a different payload; use a new key for a new {what.split()[0]}.",
        "conflict",
    )


def ingest_events(*, rows: Sequence[Any], partial: bool = False) -> BulkResult:
    """Store behaviour events once each, keyed by their idempotency key, and award event points.

    A replay of a key with the same payload counts as unchanged; the same key with another payload
    is a row error with code `conflict` (HTTP 409 when it is the only kind of error).
    """
    result = BulkResult(received=len(rows), partial=partial)
    valid, errors = validate_rows(schemas.EVENT, rows)
    hashes = {index: payload_digest(rows[index]) for index, _ in valid}
    seen: dict[str, int] = {}
    deduped = []
    duplicates_in_call = 0
    for index, row in valid:
        key = row["idempotency_key"]
        if key in seen:
            if hashes[seen[key]] == hashes[index]:
                duplicates_in_call += 1
            else:
                errors.append(_conflict(index, "idempotency_key", "event key"))
            continue
        seen[key] = index
        deduped.append((index, row))
    customers = _customer_ids(row["customer"] for _, row in deduped)
    products = _product_ids(row["product"] for _, row in deduped if row.get("product"))
    existing = dict(
        Event.objects.filter(idempotency_key__in=[row["idempotency_key"] for _, row in deduped]).values_list(
            "idempotency_key", "payload_hash"
        )
    )
    to_create: list[Event] = []
    replays = 0
    for index, row in deduped:
        key = row["idempotency_key"]
        if key in existing:
            if existing[key] == hashes[index]:
                replays += 1
            else:
                errors.append(_conflict(index, "idempotency_key", "event key"))
            continue
        row_errors = []
        if row["customer"] not in customers:
            row_errors.append(
                RowError(index, "customer", "No customer with this external_id.", "unknown_customer")
            )
        if row.get("product") and row["product"] not in products:
            row_errors.append(RowError(index, "product", "No product with this sku.", "unknown_product"))
        if row_errors:
            errors.extend(row_errors)
            continue
        to_create.append(
            Event(
                customer_id=customers[row["customer"]],
                type=row["type"],
                name=row.get("name", ""),
                product_id=products.get(row.get("product") or ""),
                quantity=row.get("quantity", 1),
                value=row.get("value"),
                properties=row.get("properties", {}),
                occurred_at=row["occurred_at"],
                idempotency_key=key,
                payload_hash=hashes[index],
            )
        )
    result.errors = sorted(errors, key=lambda e: e.index)
    if result.rejected:
        return result.finish_rejected()
    result.failed = len({e.index for e in errors})
    with transaction.atomic():
        created = Event.objects.bulk_create(to_create, batch_size=2000)
        if created:
            from loyalty.services import apply_event_points

            result.extra["points_awarded"] = apply_event_points(events=created)
            event_ids = [event.pk for event in created]
            transaction.on_commit(lambda: signals.events_ingested.send(sender=Event, event_ids=event_ids))
    result.created = len(created)
    result.unchanged = replays + duplicates_in_call
    return result


# --- orders --------------------------------------------------------------------------------------


def ingest_orders(*, rows: Sequence[Any], partial: bool = False) -> BulkResult:
    """Store orders with their lines once each, keyed by `external_id`, and award order points.

    Orders are immutable once received: a return or cancellation arrives as another order with
    negative lines. The same order sent again is unchanged; the same id with another payload is a
    `conflict` row error.
    """
    result = BulkResult(received=len(rows), partial=partial)
    valid, errors = validate_rows(schemas.ORDER, rows)
    valid = mark_duplicates(valid, "external_id", errors)
    hashes = {index: payload_digest(rows[index]) for index, _ in valid}
    customers = _customer_ids(row["customer"] for _, row in valid)
    products = _product_ids(line["sku"] for _, row in valid for line in row["lines"])
    existing = dict(
        Order.objects.filter(external_id__in=[row["external_id"] for _, row in valid]).values_list(
            "external_id", "payload_hash"
        )
    )
    accepted: list[tuple[int, dict]] = []
    replays = 0
    for index, row in valid:
        if row["external_id"] in existing:
            if existing[row["external_id"]] == hashes[index]:
                replays += 1
            else:
                errors.append(_conflict(index, "external_id", "order id"))
            continue
        row_errors = []
        if row["customer"] not in customers:
            row_errors.append(
                RowError(index, "customer", "No customer with this external_id.", "unknown_customer")
            )
        for position, line in enumerate(row["lines"]):
            if line["sku"] not in products:
                row_errors.append(
                    RowError(index, f"lines[{position}].sku", "No product with this sku.", "unknown_product")
                )
        if row_errors:
            errors.extend(row_errors)
            continue
        accepted.append((index, row))
    result.errors = sorted(errors, key=lambda e: e.index)
    if result.rejected:
        return result.finish_rejected()
    result.failed = len({e.index for e in errors})
    orders: list[Order] = []
    for index, row in accepted:
        total = sum((line["quantity"] * line["unit_price"] for line in row["lines"]), start=0)
        status = row.get("status") or (
            Order.Status.RETURNED
            if all(line["quantity"] < 0 for line in row["lines"])
            else Order.Status.PLACED
        )
        orders.append(
            Order(
                external_id=row["external_id"],
                customer_id=customers[row["customer"]],
                status=status,
                placed_at=row["placed_at"],
                currency=row.get("currency", "GBP"),
                total=total,
                attributes=row.get("attributes", {}),
                payload_hash=hashes[index],
            )
        )
    with transaction.atomic():
        created = Order.objects.bulk_create(orders, batch_size=2000)
        lines = []
        for order, (_, row) in zip(created, accepted, strict=True):
            negative_kind = (
                OrderLine.Kind.CANCELLATION
                if order.status == Order.Status.CANCELLED
                else OrderLine.Kind.RETURN
            )
            for line_no, line in enumerate(row["lines"], start=1):
                kind = line.get("kind") or (OrderLine.Kind.SALE if line["quantity"] > 0 else negative_kind)
                lines.append(
                    OrderLine(
                        order_id=order.pk,
                        line_no=line_no,
                        product_id=products[line["sku"]],
                        sku=line["sku"],
                        kind=kind,
                        quantity=line["quantity"],
                        unit_price=line["unit_price"],
                    )
                )
        OrderLine.objects.bulk_create(lines, batch_size=5000)
        if created:
            from loyalty.services import apply_order_points

            result.extra["points_awarded"] = apply_order_points(orders=created)
            order_ids = [order.pk for order in created]
            transaction.on_commit(lambda: signals.orders_ingested.send(sender=Order, order_ids=order_ids))
    result.created = len(created)
    result.unchanged = replays
    return result


# --- lifecycle and GDPR --------------------------------------------------------------------------
