"""The customer 360 page's panels: one bounded read per panel, newest first.

Every panel is limited (the page of a customer with 10,000 orders loads as fast as any other)
and returns plain dicts or model rows for a read-only template; nothing here writes.
"""

from __future__ import annotations

from django.db.models import Count, Q

PANEL_LIMIT = 10


def customer_360(*, customer, limit: int = PANEL_LIMIT) -> dict:
    from campaigns.models import Send, TrackingEvent, TrackingKind
    from customers.models import ConsentRecord, CustomerConsent, Event, Order
    from loyalty.selectors import memberships_of
    from recommender.selectors import RecommendationRules, recommendations_for
    from segments.models import CustomerFeatures, SegmentMembership

    sends = list(
        Send.objects.filter(customer=customer)
        .select_related("campaign", "variant")
        .order_by("-created_at", "-id")[:limit]
    )
    engagement: dict[int, dict[str, int]] = {}
    for row in (
        TrackingEvent.objects.filter(send_id__in=[s.pk for s in sends])
        .values("send_id")
        .annotate(
            opens=Count("id", filter=Q(kind=TrackingKind.OPEN, machine=False)),
            machine_opens=Count("id", filter=Q(kind=TrackingKind.OPEN, machine=True)),
            clicks=Count("id", filter=Q(kind=TrackingKind.CLICK)),
        )
    ):
        engagement[row["send_id"]] = row
    messages = [
        {
            "send": send,
            "opens": engagement.get(send.pk, {}).get("opens", 0),
            "machine_opens": engagement.get(send.pk, {}).get("machine_opens", 0),
            "clicks": engagement.get(send.pk, {}).get("clicks", 0),
        }
        for send in sends
    ]
    order_totals = Order.objects.filter(customer=customer).aggregate(n=Count("id"))
    return {
        "consents": list(CustomerConsent.objects.filter(customer=customer).order_by("channel")),
        "consent_history": list(
            ConsentRecord.objects.filter(customer=customer).order_by("-occurred_at", "-id")[:limit]
        ),
        "orders": list(Order.objects.filter(customer=customer).order_by("-placed_at", "-id")[:limit]),
        "order_count": order_totals["n"],
        "events": list(
            Event.objects.filter(customer=customer)
            .select_related("product")
            .order_by("-occurred_at", "-id")[:limit]
        ),
        "memberships": list(memberships_of(customer=customer)),
        "segments": list(
            SegmentMembership.objects.filter(customer=customer, exited_at__isnull=True)
            .select_related("segment")
            .order_by("segment__name")[:50]
        ),
        "features": CustomerFeatures.objects.filter(customer=customer).first(),
        "recommendations": recommendations_for(customer_ids=[customer.pk], rules=RecommendationRules(n=6))[
            customer.pk
        ],
        "messages": messages,
    }
