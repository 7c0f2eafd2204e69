"""The campaign-send benchmarks' data: customers with consent, one segment, products, a ready model
version with stored recommendations, and a campaign whose template shows them.

The bulk tables are written with COPY, so that setting up 100,000 recipients is not the long
part of a run. Used by `campaign_send.py` and `load/run.py`; Django must be set up on the
scratch database first.
"""

from __future__ import annotations

import csv
import io
import json

PRODUCTS = 200
RECS_PER_CUSTOMER = 4
HTML = """<!doctype html><html><head><style>.card{border:1px solid #ddd;padding:8px}</style></head><body>
<p>Hello {{ customer.first_name or "there" }},</p>
<p>Picked for you this week:</p>
<table><tr>{% for p in recommendations %}<td class="card"><a href="{{ p.url }}"><img src="{{ p.image_url }}" alt="">
<br>{{ p.name }}</a><br>{{ p.price }} {{ p.currency }}<br><small>{{ p.explanation }}</small></td>{% endfor %}</tr></table>
{% if loyalty %}<p>You have {{ loyalty.points }} points.</p>{% endif %}
<p><a href="https://shop.example.com/sale">See the whole sale</a></p>
<p><a href="{{ links.unsubscribe_url }}">Unsubscribe</a> · {{ company.name }}, {{ company.postal_address }}</p>
</body></html>"""


def copy_rows(table: str, columns: list[str], rows) -> None:
    from django.db import connection

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(["\\N" if value is None else value for value in row])
    buffer.seek(0)
    with connection.cursor() as cursor:
        cursor.copy_expert(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer
        )


def load_data(customers: int):
    """Customers with consent, one segment, products, a model version with stored recommendations."""
    from django.db import connection
    from django.utils import timezone

    from campaigns.models import Campaign, Variant
    from catalog.models import Product
    from customers.importers.standard import CUSTOMER_COLUMNS
    from recommender.models import ModelVersion, RecommenderConfig
    from segments.models import Segment

    now = timezone.now().isoformat()
    zones = ["Europe/London", "Europe/Paris", "America/New_York", "Asia/Tokyo", ""]
    copy_rows(
        "customers_customer",
        ["created_at", "updated_at", *CUSTOMER_COLUMNS, "attributes"],
        (
            (
                now,
                now,
                f"b{i}",
                f"b{i}@example.com",
                "",
                f"Name{i}",
                "Example",
                "en",
                zones[i % 5],
                "GB",
                "{}",
            )
            for i in range(customers)
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM customers_customer ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
    copy_rows(
        "customers_customerconsent",
        ["customer_id", "channel", "status", "source", "changed_at"],
        ((cid, "email", "granted", "benchmark", now) for cid in ids),
    )
    segment = Segment.objects.create(name="Benchmark audience", kind=Segment.Kind.STATIC)
    copy_rows(
        "segments_segmentmembership",
        ["segment_id", "customer_id", "entered_at"],
        ((segment.pk, cid, now) for cid in ids),
    )
    products = Product.objects.bulk_create(
        [
            Product(
                sku=f"SKU{i}",
                name=f"Stoneware mug no. {i}",
                price=f"{9 + i % 30}.99",
                stock=100,
                url=f"https://shop.example.com/p/{i}",
                image_url=f"https://cdn.example.com/p/{i}.jpg",
                category_path="Home > Mugs",
                brand="Example",
            )
            for i in range(PRODUCTS)
        ]
    )
    config = RecommenderConfig.objects.create(name="default", is_default=True)
    version = ModelVersion.objects.create(
        config=config, algorithm="item_knn", status=ModelVersion.Status.READY
    )
    config.active_version = version
    config.save(update_fields=["active_version"])
    product_ids = [p.pk for p in products]
    explanation = json.dumps({"text": "Because you bought a teapot"})
    copy_rows(
        "recommender_recommendation",
        ["model_version_id", "customer_id", "rank", "product_id", "score", "explanation"],
        (
            (
                version.pk,
                cid,
                rank + 1,
                product_ids[(index * 7 + rank * 13) % PRODUCTS],
                1.0 / (rank + 1),
                explanation,
            )
            for index, cid in enumerate(ids)
            for rank in range(RECS_PER_CUSTOMER)
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    campaign = Campaign.objects.create(
        name="Benchmark: mugs of the week",
        from_email="news@shop.example.com",
        from_name="Example Shop",
        recommendation_count=RECS_PER_CUSTOMER,
    )
    campaign.include_segments.add(segment)
    Variant.objects.create(
        campaign=campaign, name="A", subject="{{ customer.first_name }}, mugs picked for you", html=HTML
    )
    return campaign, ids
