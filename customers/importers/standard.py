"""The project's own CSV layouts, one per kind (documented in docs/imports.md)."""

from __future__ import annotations

from typing import IO

from catalog.services import upsert_products
from core.rows import from_text
from customers.importers.base import ImportReport, LineError, cells, read_csv, run_steps
from customers.services import ingest_orders, upsert_customers

CUSTOMER_COLUMNS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "locale",
    "timezone",
    "country",
)
CONSENT_COLUMNS = {"consent_email": "email", "consent_push": "push", "consent_sms": "sms"}
PRODUCT_COLUMNS = (
    "sku",
    "name",
    "description",
    "category",
    "brand",
    "price",
    "currency",
    "stock",
    "active",
    "url",
    "image_url",
)
ORDER_COLUMNS = ("order_id", "customer", "placed_at", "currency", "status")
LINE_COLUMNS = ("sku", "quantity", "unit_price", "kind")


def _unknown_columns(header: dict[str, str], known: set[str], line: int) -> list[LineError]:
    return [
        LineError(line, name, "Unknown column.")
        if name
        else LineError(line, "header", "A column has no name.")
        for name in header
        if name not in known and not name.startswith("attr_")
    ]


def import_customers(stream: IO, *, partial: bool = False) -> ImportReport:
    report = ImportReport(kind="customers", partial=partial)
    rows, lines = [], []
    known = set(CUSTOMER_COLUMNS) | set(CONSENT_COLUMNS)
    for line, raw in read_csv(stream):
        report.rows_read += 1
        if report.rows_read == 1:
            report.errors.extend(_unknown_columns(raw, known, 1))
        row = cells(raw, CUSTOMER_COLUMNS)
        attributes = {k[5:]: v for k, v in raw.items() if k.startswith("attr_") and v}
        if attributes:
            row["attributes"] = attributes
        consent = [
            {"channel": channel, "action": raw[column], "source": "csv_import"}
            for column, channel in CONSENT_COLUMNS.items()
            if raw.get(column)
        ]
        if consent:
            row["consent"] = consent
        rows.append(row)
        lines.append(line)
    if report.errors and not partial:
        return report
    return run_steps(report, [("customers", upsert_customers, rows, lines)])


def import_products(stream: IO, *, partial: bool = False) -> ImportReport:
    report = ImportReport(kind="products", partial=partial)
    rows, lines = [], []
    for line, raw in read_csv(stream):
        report.rows_read += 1
        if report.rows_read == 1:
            report.errors.extend(_unknown_columns(raw, set(PRODUCT_COLUMNS), 1))
        row = cells(raw, PRODUCT_COLUMNS)
        if "stock" in row:
            row["stock"] = from_text(row["stock"], "integer")
        if "active" in row:
            row["active"] = from_text(row["active"], "boolean")
        attributes = {k[5:]: v for k, v in raw.items() if k.startswith("attr_") and v}
        if attributes:
            row["attributes"] = attributes
        rows.append(row)
        lines.append(line)
    if report.errors and not partial:
        return report
    return run_steps(report, [("products", upsert_products, rows, lines)])


def import_orders(stream: IO, *, partial: bool = False) -> ImportReport:
    """One line per order line; lines sharing an order_id form one order (in file order)."""
    report = ImportReport(kind="orders", partial=partial)
    orders: dict[str, dict] = {}
    first_line: dict[str, int] = {}
    for line, raw in read_csv(stream):
        report.rows_read += 1
        if report.rows_read == 1:
            report.errors.extend(_unknown_columns(raw, set(ORDER_COLUMNS) | set(LINE_COLUMNS), 1))
        order_id = raw.get("order_id", "")
        if not order_id:
            report.errors.append(LineError(line, "order_id", "This field is required."))
            continue
        order = orders.get(order_id)
        if order is None:
            order = cells(raw, ORDER_COLUMNS[1:])
            order["external_id"] = order_id
            order["lines"] = []
            orders[order_id] = order
            first_line[order_id] = line
        line_row = cells(raw, LINE_COLUMNS)
        if "quantity" in line_row:
            line_row["quantity"] = from_text(line_row["quantity"], "integer")
        order["lines"].append(line_row)
    if report.errors and not partial:
        return report
    rows = list(orders.values())
    lines = [first_line[row["external_id"]] for row in rows]
    return run_steps(report, [("orders", ingest_orders, rows, lines)])


IMPORTERS = {"customers": import_customers, "products": import_products, "orders": import_orders}
