"""Stage 1: the shop's data. The retail sample through the CSV importer, then a loyalty program.

The importer gives every customer an @example.com address and records demo consent (source
`demo`) in the consent ledger; it drops non-product lines and lines without a customer and counts
them. Products get a shop URL so that emails have something to link to. The loyalty program is
created like a marketer would in the admin, every customer is enrolled, and points are awarded
from their orders in date order by the same service the order ingest uses.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings
from django.db.models import Count, Sum

from catalog.models import Product
from catalog.services import upsert_products
from core.demo.context import DemoContext, money
from customers.importers import import_file
from customers.models import ConsentRecord, Customer, CustomerConsent, Order, OrderLine
from loyalty.models import LoyaltyProgram, Membership, PointsTransaction, Tier
from loyalty.services import apply_order_points, enrol_customers

RETAIL_FILE = Path("data") / "online_retail" / "online_retail_dec2010.csv"
SHOP_URL = "https://shop.example.com"
PROGRAM_SLUG = "reachly-rewards"
TIERS = (("Bronze", 0, Decimal("1.00")), ("Silver", 500, Decimal("1.25")), ("Gold", 2000, Decimal("1.50")))
POINTS_CHUNK = 200


def product_url(sku: str) -> str:
    return f"{SHOP_URL}/products/{quote(sku, safe='')}"


def sku_from_url(url: str) -> str | None:
    """The sku of a product URL (tracking adds UTM parameters, which are ignored), else None."""
    prefix = f"{SHOP_URL}/products/"
    if not url.startswith(prefix):
        return None
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def retail_slice(path: Path, limit_customers: int | None) -> io.StringIO:
    """The retail file, or only the lines of its first N customers (in order of appearance)."""
    text = path.read_text(encoding="utf-8")
    if not limit_customers:
        return io.StringIO(text)
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    column = header.index("CustomerID")
    kept: set[str] = set()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in reader:
        customer = row[column]
        if customer and customer not in kept:
            if len(kept) >= limit_customers:
                continue
            kept.add(customer)
        if customer in kept:
            writer.writerow(row)
    out.seek(0)
    return out


def import_retail(ctx: DemoContext) -> dict:
    path = Path(settings.BASE_DIR) / RETAIL_FILE
    stream = retail_slice(path, ctx.options.limit_customers)
    report = import_file(stream, kind="", file_format="retail", demo_contacts=True, partial=False)
    body = report.as_dict()
    if not report.committed:
        raise RuntimeError(f"the retail import was rejected: {body['errors'][:3]}")
    skus = list(Product.objects.order_by("sku").values_list("sku", flat=True))
    upsert_products(rows=[{"sku": sku, "url": product_url(sku)} for sku in skus])
    consent = dict(
        CustomerConsent.objects.filter(channel="email")
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {
        "source": str(RETAIL_FILE),
        "rows_read": body["rows_read"],
        "dropped_total": body["dropped_total"],
        "dropped": body["dropped"],
        "customers": Customer.objects.count(),
        "products": Product.objects.count(),
        "orders": Order.objects.count(),
        "cancelled_orders": Order.objects.filter(status=Order.Status.CANCELLED).count(),
        "order_lines": OrderLine.objects.count(),
        "email_consent": {k: int(v) for k, v in sorted(consent.items())},
        "consent_records_demo": ConsentRecord.objects.filter(source="demo").count(),
        "revenue": money(Order.objects.aggregate(s=Sum("total"))["s"]),
    }


def build_loyalty(ctx: DemoContext) -> dict:
    program = LoyaltyProgram.objects.create(
        name="Reachly Rewards",
        slug=PROGRAM_SLUG,
        currency="GBP",
        points_per_currency_unit=Decimal(1),
        points_expiry_days=None,  # the sample is from 2010: points that expire would all be gone today
    )
    Tier.objects.bulk_create(
        [
            Tier(program=program, name=name, threshold=threshold, multiplier=multiplier)
            for name, threshold, multiplier in TIERS
        ]
    )
    enrolled = enrol_customers(program=program, customer_ids=Customer.objects.values_list("pk", flat=True))
    orders = list(Order.objects.order_by("placed_at", "pk"))
    awarded = 0
    for start in ctx.progress(range(0, len(orders), POINTS_CHUNK), desc="points from orders"):
        awarded += apply_order_points(orders=orders[start : start + POINTS_CHUNK])
    tiers = {
        name: Membership.objects.filter(program=program, tier__name=name).count() for name, _, _ in TIERS
    }
    return {
        "program": program.name,
        "members": enrolled,
        "points_net": awarded,
        "ledger_entries": PointsTransaction.objects.filter(membership__program=program).count(),
        "members_by_tier": tiers,
        "tiers": [
            {"name": name, "threshold": threshold, "multiplier": str(multiplier)}
            for name, threshold, multiplier in TIERS
        ],
    }


def run(ctx: DemoContext) -> None:
    data = import_retail(ctx)
    ctx.report["import"] = data
    ctx.say(
        f"  imported {data['customers']} customers, {data['products']} products, {data['orders']} orders "
        f"({data['rows_read']} lines read, {data['dropped_total']} dropped: "
        + ", ".join(f"{reason} {n}" for reason, n in data["dropped"].items())
        + ")"
    )
    loyalty = build_loyalty(ctx)
    ctx.report["loyalty"] = loyalty
    ctx.say(
        f"  loyalty: {loyalty['members']} members, {loyalty['points_net']:,} points from orders; tiers "
        + ", ".join(f"{k} {v}" for k, v in loyalty["members_by_tier"].items())
    )
