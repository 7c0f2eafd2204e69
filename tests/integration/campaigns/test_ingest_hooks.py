"""Ingest tells campaigns about new events and orders as soon as they commit."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import (
    CampaignRun,
    Conversion,
    ScheduleKind,
    Send,
    TrackingEvent,
    TrackingKind,
    TriggerKind,
)
from campaigns.services.launch import launch_campaign
from customers.services import ingest_events, ingest_orders
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db


def test_an_ingested_event_starts_its_trigger_run_without_waiting_for_the_scan(
    send_settings, django_capture_on_commit_callbacks
):
    customer = scenario.make_customers(1)[0]
    campaign = launch_campaign(
        campaign=scenario.make_campaign(
            None,
            schedule_kind=ScheduleKind.TRIGGERED,
            trigger_kind=TriggerKind.EVENT,
            trigger_event_type="add_to_cart",
        )
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest_events(
            rows=[
                {
                    "idempotency_key": "cart-9",
                    "customer": customer.external_id,
                    "type": "add_to_cart",
                    "occurred_at": timezone.now().isoformat(),
                }
            ]
        )
    assert result.created == 1
    run = CampaignRun.objects.get(campaign=campaign)
    assert run.trigger_customer == customer
    assert Send.objects.filter(run=run, customer=customer).count() == 1


def test_an_ingested_order_is_attributed_at_once(
    send_settings, smtp_sink, django_capture_on_commit_callbacks
):
    customers = scenario.make_customers(1)
    products = scenario.make_products(2)
    scenario.store_recommendations(customers, products)
    from campaigns.services.launch import write_run_ledger
    from campaigns.services.sending import send_campaign_chunks

    campaign = launch_campaign(campaign=scenario.make_campaign(scenario.make_segment(customers)))
    write_run_ledger(run_id=campaign.runs.get().pk)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    send = Send.objects.get(campaign=campaign)
    TrackingEvent.objects.create(
        send=send,
        campaign=campaign,
        variant=send.variant,
        customer=send.customer,
        kind=TrackingKind.CLICK,
        occurred_at=timezone.now() - timedelta(hours=1),
    )
    with django_capture_on_commit_callbacks(execute=True):
        ingest_orders(
            rows=[
                {
                    "external_id": "web-1",
                    "customer": send.customer.external_id,
                    "placed_at": timezone.now().isoformat(),
                    "currency": "GBP",
                    "lines": [{"sku": products[0].sku, "quantity": 2, "unit_price": "10.00"}],
                }
            ]
        )
    conversion = Conversion.objects.get(order__external_id="web-1")
    assert conversion.send == send and conversion.touch == "click"
    assert conversion.revenue == Decimal("20.00")
