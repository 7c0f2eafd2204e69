"""Stage 5: customers read the campaign. A seeded behaviour model, acted out through the product.

The model: each customer's taste for a product is how close it is to what they bought, measured by
co-purchase (cosine similarity of the products' buyer vectors over the whole sample, including
the days the recommenders were evaluated on). A customer opens with a probability that grows with
how often they buy; an opener looks at the products in the email in order, clicks each with a
probability that grows with their taste for it and falls with its position, and may buy what they
clicked. Some customers also buy on their own, campaign or not (the control group too). About a
third read mail in Apple Mail, whose privacy proxy fetches the open pixel on delivery.

Everything is acted out on the real parts: opens and clicks are GET requests to the tracking URLs
found in the sent messages (`/t/o/...gif`, `/t/c/.../`, through Django's request handler), and the
orders go through `customers.services.ingest_orders`, which awards loyalty points and hands them
to attribution. Randomness comes from one seeded stream per customer, so a run is reproducible and
one customer's draws do not depend on anyone else's.

Time is compressed: the opens come seconds after delivery, which the tracking code would call a
machine's ("within 5 s of delivery"), so that rule is set to 0 s while the simulation runs.
"""

from __future__ import annotations

import math
import re
from email import message_from_bytes, policy
from urllib.parse import urlsplit

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.db.models import Count, Q, Sum
from django.test import Client, override_settings

from campaigns.models import Conversion, Send, TrackedLink, TrackingEvent
from campaigns.tracking import tokens
from campaigns.tracking.conversions import attribute_orders
from catalog.models import Product
from core.demo.context import DemoContext, money
from core.demo.data import sku_from_url
from customers.models import Customer, Order, OrderLine
from customers.services import ingest_orders
from segments.models import CustomerFeatures

HUMAN_AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
APPLE_PROXY_AGENT = "Mozilla/5.0"
APPLE_MAIL_SHARE = 0.3
OPEN_BASE, OPEN_ENGAGED = 0.22, 0.30
CLICK_BASE, CLICK_TASTE, POSITION_DECAY = 0.03, 0.55, 0.85
BUY_BASE, BUY_TASTE = 0.15, 0.6
ORGANIC_BASE, ORGANIC_ENGAGED = 0.02, 0.04
LINK = re.compile(r'(?:href|src)="([^"]+)"')


class Taste:
    """Cosine co-purchase similarity between products, from every sale line of the sample."""

    def __init__(self) -> None:
        lines = list(
            OrderLine.objects.filter(quantity__gt=0)
            .exclude(order__status="cancelled")
            .values_list("order__customer_id", "sku")
            .distinct()
        )
        customers = sorted({c for c, _ in lines})
        skus = sorted({s for _, s in lines})
        self.row = {c: i for i, c in enumerate(customers)}
        self.col = {s: i for i, s in enumerate(skus)}
        rows = np.fromiter((self.row[c] for c, _ in lines), dtype=np.int64, count=len(lines))
        cols = np.fromiter((self.col[s] for _, s in lines), dtype=np.int64, count=len(lines))
        bought = sp.csr_matrix((np.ones(len(lines)), (rows, cols)), shape=(len(customers), len(skus)))
        norms = np.sqrt(np.asarray(bought.sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        scaled = bought @ sp.diags(1.0 / norms)
        self.similarity = (scaled.T @ scaled).tocsr()
        self.bought = bought.tocsr()

    def of(self, customer_id: int, sku: str) -> float:
        """0..1: the closest product the customer bought (0.3 for a product they bought already)."""
        row, col = self.row.get(customer_id), self.col.get(sku)
        if row is None or col is None:
            return 0.0
        history = self.bought.indices[self.bought.indptr[row] : self.bought.indptr[row + 1]]
        if col in set(history.tolist()):
            return 0.3
        if not len(history):
            return 0.0
        return float(self.similarity[col, history].max())

    def favourites(self, customer_id: int) -> list[str]:
        row = self.row.get(customer_id)
        if row is None:
            return []
        skus = list(self.col)
        return sorted(
            skus[c] for c in self.bought.indices[self.bought.indptr[row] : self.bought.indptr[row + 1]]
        )


def engagement_level(frequency: int) -> float:
    """0..1 from the number of orders: one order 0.33, three 0.67, seven or more 1."""
    return min(1.0, math.log1p(frequency) / math.log(8))


def message_links(raw: bytes) -> tuple[str | None, list[str]]:
    """The open pixel and the tracked click URLs of a sent message, in document order."""
    message = message_from_bytes(raw, policy=policy.default)
    part = message.get_body(preferencelist=("html",))
    html = part.get_content() if part is not None else ""
    pixel, clicks = None, []
    for url in LINK.findall(html):
        path = urlsplit(url).path
        if path.startswith("/t/o/"):
            pixel = url
        elif path.startswith("/t/c/") and url not in clicks:
            clicks.append(url)
    return pixel, clicks


def _destination(url: str, links: dict[tuple[int, str], str], variant_id: int) -> str | None:
    token = urlsplit(url).path.split("/")[3]
    try:
        _, link_hash = tokens.read_token(token, purpose=tokens.CLICK)
    except tokens.BadToken:
        return None
    return links.get((variant_id, link_hash))


def simulate(ctx: DemoContext) -> dict:
    campaign_id = ctx.extras["campaign_id"]
    messages = ctx.extras["messages"]
    taste = Taste()
    site = urlsplit(settings.SITE_URL)
    client = Client(HTTP_HOST=site.netloc, REMOTE_ADDR="198.51.100.7")
    frequency = dict(CustomerFeatures.objects.values_list("customer_id", "frequency"))
    external = dict(Customer.objects.values_list("pk", "external_id"))
    prices = dict(Product.objects.values_list("sku", "price"))
    links = {(v, h): url for v, h, url in TrackedLink.objects.values_list("variant_id", "url_hash", "url")}
    ledger = list(
        Send.objects.filter(campaign_id=campaign_id)
        .order_by("customer_id")
        .values_list("id", "customer_id", "state", "variant_id", "message_id")
    )
    orders: list[dict] = []
    requests = {"open": 0, "machine_open": 0, "click": 0}
    for _send_id, customer_id, state, variant_id, message_id in ctx.progress(
        ledger, total=len(ledger), desc="customers"
    ):
        rng = np.random.default_rng([ctx.seed, 5, customer_id])
        level = engagement_level(frequency.get(customer_id, 0))
        basket: list[tuple[str, int]] = []
        raw = messages.get(message_id) if state == "sent" else None
        if raw is not None:
            pixel, clicks = message_links(raw)
            if pixel and rng.random() < APPLE_MAIL_SHARE:
                client.get(urlsplit(pixel).path, HTTP_USER_AGENT=APPLE_PROXY_AGENT)
                requests["machine_open"] += 1
            if pixel and rng.random() < OPEN_BASE + OPEN_ENGAGED * level:
                client.get(urlsplit(pixel).path, HTTP_USER_AGENT=HUMAN_AGENT)
                requests["open"] += 1
                position = 0
                for url in clicks:
                    destination = _destination(url, links, variant_id)
                    sku = sku_from_url(destination or "")
                    if sku is None:
                        continue  # the "whole shop" button, not a product
                    liking = taste.of(customer_id, sku)
                    p_click = (CLICK_BASE + CLICK_TASTE * liking) * POSITION_DECAY**position
                    position += 1
                    if rng.random() < p_click:
                        response = client.get(urlsplit(url).path, HTTP_USER_AGENT=HUMAN_AGENT)
                        requests["click"] += 1
                        if response.status_code == 302 and rng.random() < BUY_BASE + BUY_TASTE * liking:
                            basket.append((sku, int(rng.integers(1, 7))))
        if rng.random() < ORGANIC_BASE + ORGANIC_ENGAGED * level:
            favourites = taste.favourites(customer_id)
            if favourites:
                basket.append((favourites[int(rng.integers(len(favourites)))], int(rng.integers(1, 7))))
        if basket:
            orders.append(
                {
                    "external_id": f"demo-{external[customer_id]}",
                    "customer": external[customer_id],
                    "placed_at": None,
                    "currency": "GBP",
                    "lines": [
                        {"sku": sku, "quantity": qty, "unit_price": str(prices[sku])} for sku, qty in basket
                    ],
                }
            )
    return {"orders": orders, "requests": requests}


def place_orders(orders: list[dict]) -> list[int]:
    """The simulated orders through the order ingest (points, then attribution on commit)."""
    from django.utils import timezone

    now = timezone.now().isoformat()
    for order in orders:
        order["placed_at"] = now
    if not orders:
        return []
    result = ingest_orders(rows=orders)
    if result.errors:
        raise RuntimeError(f"simulated orders were rejected: {[e.message for e in result.errors[:3]]}")
    ids = list(Order.objects.filter(external_id__startswith="demo-").values_list("pk", flat=True))
    attribute_orders(order_ids=ids)  # already done by the ingest hook; idempotent, and says so here
    return ids


def run(ctx: DemoContext) -> None:
    campaign_id = ctx.extras["campaign_id"]
    with override_settings(CAMPAIGN_MACHINE_OPEN_SECONDS=0):
        simulated = simulate(ctx)
        order_ids = place_orders(simulated["orders"])
    events = TrackingEvent.objects.filter(campaign_id=campaign_id)
    human = Q(machine=False)
    counts = {
        "opens_human": events.filter(human, kind="open").count(),
        "opens_machine": events.filter(kind="open", machine=True).count(),
        "clicks_human": events.filter(human, kind="click").count(),
        "customers_opened": events.filter(human, kind="open").values("customer").distinct().count(),
        "customers_clicked": events.filter(human, kind="click").values("customer").distinct().count(),
    }
    conversions = Conversion.objects.filter(campaign_id=campaign_id)
    attributed = conversions.aggregate(n=Count("id"), revenue=Sum("revenue"))
    ctx.extras["order_ids"] = order_ids
    ctx.report["engagement"] = {
        "model": {
            "apple_mail_share": APPLE_MAIL_SHARE,
            "open": f"{OPEN_BASE} + {OPEN_ENGAGED} x engagement",
            "click": f"({CLICK_BASE} + {CLICK_TASTE} x taste) x {POSITION_DECAY}^position",
            "buy_after_click": f"{BUY_BASE} + {BUY_TASTE} x taste",
            "organic_order": f"{ORGANIC_BASE} + {ORGANIC_ENGAGED} x engagement",
        },
        "requests": simulated["requests"],
        "tracking": counts,
        "orders": len(order_ids),
        "order_revenue": money(Order.objects.filter(pk__in=order_ids).aggregate(s=Sum("total"))["s"]),
        "conversions": attributed["n"],
        "conversions_by_touch": dict(
            sorted(conversions.values_list("touch").annotate(n=Count("id")).order_by())
        ),
        "attributed_revenue": money(attributed["revenue"]),
    }
    ctx.say(
        f"  {counts['opens_human']} human opens ({counts['opens_machine']} machine), "
        f"{counts['clicks_human']} clicks, {len(order_ids)} orders, {attributed['n']} attributed to the campaign"
    )
