"""The UCI "Online Retail" layout (data/online_retail): invoices lines with a customer id.

InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country

Customers come from CustomerID and Country, products from StockCode, Description and UnitPrice
(the most frequent price and description of a code), orders from invoices; invoices starting with
"C" are cancellations, stored as orders with negative lines. Postage, manual entries, bank charges
and gift vouchers are not products: their lines are dropped and counted, as are lines without a
customer id. Everything is derived from the file alone, so a second import changes nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import IO
from zoneinfo import ZoneInfo

from catalog.services import upsert_products
from customers.importers.base import ImportReport, LineError, read_csv, run_steps
from customers.services import ingest_orders, upsert_customers

RETAIL_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
NON_PRODUCT_CODES = frozenset(
    {"POST", "DOT", "M", "D", "C2", "CRUK", "PADS", "BANK CHARGES", "BANKCHARGES", "AMAZONFEE", "S", "B"}
)
SHOP_TIMEZONE = ZoneInfo("Europe/London")
DEMO_EMAIL_DOMAIN = "example.com"


def _drop_reason(code: str) -> str | None:
    upper = code.upper()
    if upper in NON_PRODUCT_CODES:
        return f"non-product stock code {upper}"
    if upper.startswith("GIFT_0001"):
        return "gift voucher"
    return None


def _customer_id(raw: str) -> str:
    return raw[:-2] if raw.endswith(".0") else raw


def _most_common(counter: Counter):
    """Deterministic: the most frequent value, ties broken by the smallest."""
    best = max(counter.values())
    return min(value for value, count in counter.items() if count == best)


def demo_email(customer_id: str) -> str:
    return f"customer-{customer_id}@{DEMO_EMAIL_DOMAIN}"


def import_retail(stream: IO, *, partial: bool = False, demo_contacts: bool = False) -> ImportReport:
    report = ImportReport(kind="retail", partial=partial)
    dropped: Counter = Counter()
    customers: dict[str, dict] = {}
    customer_lines: dict[str, int] = {}
    customer_first_seen: dict[str, datetime] = {}
    descriptions: dict[str, Counter] = defaultdict(Counter)
    prices: dict[str, Counter] = defaultdict(Counter)
    product_lines: dict[str, int] = {}
    invoices: dict[str, dict] = {}
    invoice_lines: dict[str, int] = {}
    header_checked = False
    for line, raw in read_csv(stream):
        report.rows_read += 1
        if not header_checked:
            header_checked = True
            missing = [c for c in RETAIL_COLUMNS if c not in raw]
            if missing:
                report.errors.append(
                    LineError(1, ",".join(missing), "Missing column(s) of the retail format.")
                )
                break
        code = raw["StockCode"]
        reason = _drop_reason(code)
        customer_id = _customer_id(raw["CustomerID"])
        if reason is None and not customer_id:
            reason = "no customer id"
        if reason is not None:
            dropped[reason] += 1
            continue
        try:
            placed_at = datetime.fromisoformat(raw["InvoiceDate"]).replace(tzinfo=SHOP_TIMEZONE)
        except ValueError:
            report.errors.append(
                LineError(line, "InvoiceDate", "Not a date-time such as 2010-12-01 08:26:00.")
            )
            continue
        try:
            quantity = int(raw["Quantity"])
            unit_price = Decimal(raw["UnitPrice"])
        except (ValueError, InvalidOperation):
            report.errors.append(LineError(line, "Quantity/UnitPrice", "Not a number."))
            continue
        if customer_id not in customers:
            country = raw["Country"].replace("_", " ").strip()
            customers[customer_id] = {
                "external_id": customer_id,
                "country": "" if country == "Unspecified" else country,
            }
            customer_lines[customer_id] = line
            customer_first_seen[customer_id] = placed_at
        customer_first_seen[customer_id] = min(customer_first_seen[customer_id], placed_at)
        descriptions[code][raw["Description"].replace("_", " ").strip() or code] += 1
        prices[code][abs(unit_price)] += 1
        product_lines.setdefault(code, line)
        invoice_no = raw["InvoiceNo"]
        invoice = invoices.get(invoice_no)
        if invoice is None:
            cancelled = invoice_no.upper().startswith("C")
            invoice = {
                "external_id": invoice_no,
                "customer": customer_id,
                "placed_at": placed_at.isoformat(),
                "currency": "GBP",
                "status": "cancelled" if cancelled else "placed",
                "lines": [],
            }
            invoices[invoice_no] = invoice
            invoice_lines[invoice_no] = line
        kind = "sale" if quantity > 0 else ("cancellation" if invoice["status"] == "cancelled" else "return")
        invoice["lines"].append(
            {"sku": code, "quantity": quantity, "unit_price": str(abs(unit_price)), "kind": kind}
        )
    report.dropped = dict(dropped)
    if report.errors and not partial:
        return report

    if demo_contacts:
        for customer_id, row in customers.items():
            row["email"] = demo_email(customer_id)
            row["consent"] = [
                {
                    "channel": "email",
                    "action": "granted",
                    "source": "demo",
                    "occurred_at": customer_first_seen[customer_id].isoformat(),
                }
            ]
    products = [
        {
            "sku": code,
            "name": _most_common(descriptions[code])[:300],
            "price": str(_most_common(prices[code])),
            "currency": "GBP",
        }
        for code in descriptions
    ]
    return run_steps(
        report,
        [
            ("customers", upsert_customers, list(customers.values()), list(customer_lines.values())),
            ("products", upsert_products, products, [product_lines[p["sku"]] for p in products]),
            ("orders", ingest_orders, list(invoices.values()), list(invoice_lines.values())),
        ],
    )
