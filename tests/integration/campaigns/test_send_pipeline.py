"""Launch and send in-process over real SMTP: the ledger, the messages, the send-time checks."""

from __future__ import annotations

import pytest

from campaigns.models import CampaignStatus, Send, SendState
from campaigns.services.launch import launch_campaign, write_run_ledger
from campaigns.services.sending import send_campaign_chunks
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db


def launch_and_write(campaign):
    campaign = launch_campaign(campaign=campaign)
    run = campaign.runs.get()
    write_run_ledger(run_id=run.pk)
    return campaign


def test_every_consenting_customer_gets_one_message(send_settings, smtp_sink):
    customers = scenario.make_customers(120)
    refused = scenario.make_customers(5, prefix="nope", consent=False)
    segment = scenario.make_segment(customers + refused)
    products = scenario.make_products()
    scenario.store_recommendations(customers, products)
    campaign = launch_and_write(scenario.make_campaign(segment))

    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=60)

    assert Send.objects.filter(campaign=campaign, state=SendState.SENT).count() == 120
    assert Send.objects.filter(campaign=campaign, state=SendState.SUPPRESSED).count() == 5
    assert smtp_sink.count() == 120
    assert len(set(smtp_sink.message_ids())) == 120
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT
    mail = smtp_sink.messages[0].parsed()
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/t/u/" in mail["List-Unsubscribe"]
    html = mail.get_body(("html",)).get_content()
    assert "/t/c/" in html and "/t/o/" in html
    assert "Product" in html
