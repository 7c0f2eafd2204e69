"""Stage 4: an A/B email campaign to the retail customers, through the real launch and send path.

Variant A shows each customer's own recommendations (the `product_grid` block over the
`recommendations` the recommender stored); variant B shows the shop's four bestsellers, the same
for everyone, written into the template as a marketer would. 10 % of the audience is a control
group that gets nothing, so the campaign's own effect can be measured too. `launch_campaign` runs
the ledger writer and the senders as Celery tasks (eager on the embedded default); mail goes to
the file backend in out/mail/, and a few messages are copied to out/eml/ to open in a mail app.
"""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path

from django.db.models import Count

from campaigns.models import Campaign, CampaignStatus, Send, Variant
from campaigns.services.launch import launch_campaign
from catalog.models import Product
from core.demo.context import DemoContext
from experiments.models import Correction, Experiment, Method, Metric, Mode
from segments.models import Segment

AUDIENCE_SEGMENT = "Email subscribers"
CONTROL_PERCENT = 10
EML_PER_VARIANT = 3
SEPARATOR = b"\n" + b"-" * 79 + b"\n"

HTML_A = """{% extends "layouts/base.html" %}
{% from "blocks/product_grid.html" import product_grid %}
{% from "blocks/loyalty.html" import loyalty_status %}
{% block title %}Christmas picks{% endblock %}
{% block content %}
<h1>Hi {{ customer|first_name }}, your Christmas picks are here</h1>
<p>We chose these from what you have bought with us before.</p>
{{ product_grid(recommendations, heading="Picked for you") }}
{{ loyalty_status(loyalty) }}
<p><a class="button" href="https://shop.example.com/christmas">See the whole Christmas shop</a></p>
{% endblock %}
"""

HTML_B = """{% extends "layouts/base.html" %}
{% from "blocks/product_grid.html" import product_grid %}
{% from "blocks/loyalty.html" import loyalty_status %}
{% set bestsellers = BESTSELLERS %}
{% block title %}Christmas bestsellers{% endblock %}
{% block content %}
<h1>Hi {{ customer|first_name }}, these are flying off the shelves</h1>
<p>Our most popular gifts this December.</p>
{{ product_grid(bestsellers, heading="Bestsellers") }}
{{ loyalty_status(loyalty) }}
<p><a class="button" href="https://shop.example.com/christmas">See the whole Christmas shop</a></p>
{% endblock %}
"""


def bestsellers(n: int = 4) -> list[dict]:
    """The products most customers bought (ties by sku): what a bestseller block shows."""
    products = (
        Product.objects.filter(order_lines__quantity__gt=0)
        .annotate(buyers=Count("order_lines__order__customer", distinct=True))
        .order_by("-buyers", "sku")[:n]
    )
    return [
        {
            "name": p.name.title(),
            "url": p.url,
            "image_url": None,
            "price": float(p.price),
            "currency": p.currency,
            "explanation": "Bestseller",
            "sku": p.sku,
            "category": None,
        }
        for p in products
    ]


def bestseller_template(items: list[dict]) -> str:
    """Variant B's HTML with the bestsellers as a literal list (JSON literals are Jinja literals)."""
    literal = "[" + ", ".join(json.dumps(item).replace("null", "none") for item in items) + "]"
    return HTML_B.replace("BESTSELLERS", literal)


def create_campaign(ctx: DemoContext) -> Campaign:
    audience = Segment.objects.get(name=AUDIENCE_SEGMENT)
    campaign = Campaign.objects.create(
        name="Christmas picks: recommendations vs bestsellers",
        channel="email",
        from_name="Reachly Gifts",
        from_email="news@example.com",
        utm_campaign="xmas-ab",
        control_percent=CONTROL_PERCENT,
        assignment_salt=f"demo-xmas-{ctx.seed}",
        recommendation_count=4,
        conversion_window_hours=5 * 24,
    )
    campaign.include_segments.set([audience])
    Variant.objects.create(
        campaign=campaign,
        name="A",
        weight=1,
        subject="Christmas picks chosen for you",
        preheader="Four gift ideas based on what you love",
        html=HTML_A,
    )
    bestseller = Variant.objects.create(
        campaign=campaign,
        name="B",
        weight=1,
        subject="Our Christmas bestsellers",
        preheader="The four gifts everyone is buying",
        html=bestseller_template(bestsellers()),
    )
    # The experiment's design, fixed before launch as the admin's inline does: B is the baseline.
    Experiment.objects.create(
        campaign=campaign,
        mode=Mode.AB,
        metric=Metric.CONVERSION_RATE,
        method=Method.FREQUENTIST,
        relative=False,
        correction=Correction.NONE,
        default_variant=bestseller,
    )
    return campaign


def sent_messages(mail_dir: Path) -> dict[str, bytes]:
    """Every message the file backend wrote, by Message-ID."""
    messages: dict[str, bytes] = {}
    for path in sorted(mail_dir.glob("*")):
        for chunk in path.read_bytes().split(SEPARATOR):
            if not chunk.strip():
                continue
            parsed = message_from_bytes(chunk, policy=policy.default)
            message_id = str(parsed.get("Message-ID", "")).strip()
            if message_id:
                messages[message_id] = chunk
    return messages


def write_eml(ctx: DemoContext, campaign: Campaign, messages: dict[str, bytes]) -> list[str]:
    written = []
    for variant in campaign.variants.order_by("name"):
        sends = Send.objects.filter(campaign=campaign, variant=variant, state="sent").order_by("customer_id")
        for send in sends[:EML_PER_VARIANT]:
            raw = messages.get(send.message_id)
            if raw is None:
                continue
            name = f"variant-{variant.name}-customer-{send.customer.external_id}.eml"
            (ctx.out / "eml" / name).write_bytes(raw)
            written.append(name)
    return written


def run(ctx: DemoContext) -> None:
    campaign = create_campaign(ctx)
    ctx.say(f"  launching '{campaign.name}' to the segment '{AUDIENCE_SEGMENT}'")
    launch_campaign(campaign=campaign)
    campaign.refresh_from_db()
    if campaign.status != CampaignStatus.SENT:
        raise RuntimeError(f"the campaign did not finish sending: {campaign.status} {campaign.status_reason}")
    states = dict(
        Send.objects.filter(campaign=campaign).values_list("state").annotate(n=Count("id")).order_by()
    )
    arms = {}
    for arm, variant, n in (
        Send.objects.filter(campaign=campaign)
        .values_list("arm", "variant__name")
        .annotate(n=Count("id"))
        .order_by("arm", "variant__name")
    ):
        arms[variant or arm] = n
    messages = sent_messages(ctx.out / "mail")
    eml = write_eml(ctx, campaign, messages)
    ctx.extras["campaign_id"] = campaign.pk
    ctx.extras["messages"] = messages
    ctx.report["campaign"] = {
        "name": campaign.name,
        "audience_segment": AUDIENCE_SEGMENT,
        "control_percent": CONTROL_PERCENT,
        "ledger": dict(sorted(states.items())),
        "arms": dict(sorted(arms.items())),
        "messages_in_mail_dir": len(messages),
        "eml_files": sorted(eml),
    }
    ctx.say(
        "  ledger: "
        + ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
        + f"; arms: {', '.join(f'{k} {v}' for k, v in sorted(arms.items()))}; "
        + f"{len(messages)} messages in {ctx.out / 'mail'}, {len(eml)} copied to {ctx.out / 'eml'}"
    )
