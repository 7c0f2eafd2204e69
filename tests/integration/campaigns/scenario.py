"""Builders for campaign scenarios: customers with consent, segments, products, campaigns.

Bulk inserts throughout: the kill-loop and benchmark scenarios need thousands of customers.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from campaigns.models import Campaign, Channel, Variant
from catalog.models import Product
from customers.models import ConsentAction, ConsentRecord, ConsentStatus, Customer, CustomerConsent
from recommender.models import ModelVersion, Recommendation, RecommenderConfig
from segments.models import Segment, SegmentMembership

HTML = """<html><body>
<p>Hello {{ customer.first_name or "there" }},</p>
{% for product in recommendations %}<p><a href="{{ product.url }}">{{ product.name }}</a> {{ product.price }}</p>{% endfor %}
{% if loyalty %}<p>You have {{ loyalty.points }} points.</p>{% endif %}
<p><a href="https://shop.example.com/sale">Sale</a> <a href="{{ links.unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""


def make_customers(
    n: int,
    *,
    prefix: str = "c",
    consent: bool = True,
    channel: str = "email",
    timezone_name: str = "",
    start: int = 0,
) -> list[Customer]:
    now = timezone.now()
    customers = Customer.objects.bulk_create(
        [
            Customer(
                external_id=f"{prefix}{i}",
                email=f"{prefix}{i}@example.com",
                first_name=f"Name{i}",
                timezone=timezone_name,
            )
            for i in range(start, start + n)
        ],
        batch_size=5000,
    )
    if consent:
        grant(customers, channel=channel, at=now - timedelta(days=1))
    return customers


def grant(customers, *, channel: str = "email", at=None) -> None:
    at = at or timezone.now() - timedelta(days=1)
    ConsentRecord.objects.bulk_create(
        [
            ConsentRecord(
                customer=c, channel=channel, action=ConsentAction.GRANTED, source="test", occurred_at=at
            )
            for c in customers
        ],
        batch_size=5000,
    )
    CustomerConsent.objects.bulk_create(
        [
            CustomerConsent(
                customer=c, channel=channel, status=ConsentStatus.GRANTED, source="test", changed_at=at
            )
            for c in customers
        ],
        batch_size=5000,
    )


def make_segment(customers, name: str = "Everyone") -> Segment:
    segment = Segment.objects.create(name=name, kind=Segment.Kind.STATIC)
    now = timezone.now()
    SegmentMembership.objects.bulk_create(
        [SegmentMembership(segment=segment, customer=c, entered_at=now) for c in customers], batch_size=5000
    )
    return segment


def make_campaign(
    segment: Segment | None = None,
    *,
    channel: str = Channel.EMAIL,
    variants: int = 1,
    html: str = HTML,
    subject: str = "Hello {{ customer.first_name }}",
    **fields,
) -> Campaign:
    fields.setdefault("from_email", "news@shop.example.com")
    fields.setdefault("from_name", "Example Shop")
    campaign = Campaign.objects.create(name=fields.pop("name", "Spring sale"), channel=channel, **fields)
    if segment is not None:
        campaign.include_segments.add(segment)
    for index in range(variants):
        Variant.objects.create(
            campaign=campaign,
            name="ABCDEFGH"[index],
            subject=subject + ("" if index == 0 else f" ({'ABCDEFGH'[index]})"),
            html=html,
            push_title="Hi {{ customer.first_name }}",
            push_body="New for you: {{ recommendations[0].name if recommendations else 'our picks' }}",
            push_url="https://shop.example.com/push",
        )
    return campaign


def make_products(n: int = 12) -> list[Product]:
    return Product.objects.bulk_create(
        [
            Product(
                sku=f"SKU{i}",
                name=f"Product {i}",
                price=Decimal("9.99") + i,
                stock=10,
                url=f"https://shop.example.com/p/{i}",
                image_url=f"https://shop.example.com/i/{i}.jpg",
                category_path="Home > Mugs",
            )
            for i in range(n)
        ]
    )


def store_recommendations(customers, products, *, per_customer: int = 4) -> ModelVersion:
    config = RecommenderConfig.objects.create(name="default", is_default=True)
    version = ModelVersion.objects.create(
        config=config, algorithm="item_knn", status=ModelVersion.Status.READY
    )
    config.active_version = version
    config.save(update_fields=["active_version"])
    rows = []
    for index, customer in enumerate(customers):
        for rank in range(per_customer):
            product = products[(index + rank) % len(products)]
            rows.append(
                Recommendation(
                    model_version=version,
                    customer=customer,
                    rank=rank + 1,
                    product=product,
                    score=1.0 / (rank + 1),
                    explanation={"text": "Because you liked mugs"},
                )
            )
    Recommendation.objects.bulk_create(rows, batch_size=10000)
    return version
