"""Tracking over HTTP: the pixel, click redirects, unsubscribe pages, provider webhooks, attribution."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import (
    CampaignStatus,
    Conversion,
    Send,
    SendState,
    TrackedLink,
    TrackingEvent,
    TrackingKind,
)
from campaigns.services.launch import launch_campaign, write_run_ledger
from campaigns.services.results import campaign_report
from campaigns.services.sending import send_campaign_chunks
from campaigns.tracking import tokens
from campaigns.tracking.conversions import attribute_new_orders, attribute_orders
from campaigns.tracking.engagement import machine_reason
from customers.models import ConsentRecord, CustomerConsent, Order, Suppression
from customers.selectors import is_suppressed
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db

HUMAN = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"


@pytest.fixture
def sent(send_settings, smtp_sink):
    """Twenty customers who received one email each, with the messages the sink got."""
    customers = scenario.make_customers(20)
    products = scenario.make_products(6)
    scenario.store_recommendations(customers, products)
    campaign = launch_campaign(campaign=scenario.make_campaign(scenario.make_segment(customers)))
    write_run_ledger(run_id=campaign.runs.get().pk)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    by_address = {m.rcpt_tos[0]: m.parsed() for m in smtp_sink.messages}
    sends = {s.customer.email: s for s in Send.objects.filter(campaign=campaign).select_related("customer")}
    return campaign, sends, by_address


def _html(message) -> str:
    return message.get_body(("html",)).get_content()


def _path(url: str) -> str:
    return url.replace("https://testserver", "")


def test_click_redirects_to_the_stored_destination_and_records_it(client, sent):
    campaign, sends, mails = sent
    address = next(iter(mails))
    links = re.findall(r'href="(https://testserver/t/c/[^"]+)"', _html(mails[address]))
    assert links
    response = client.get(_path(links[0]), HTTP_USER_AGENT=HUMAN)
    assert response.status_code == 302
    assert response["Location"].startswith("https://shop.example.com/")
    assert "utm_campaign=" in response["Location"]
    event = TrackingEvent.objects.get(kind=TrackingKind.CLICK)
    assert event.send == sends[address] and not event.machine


def test_tampered_or_misused_click_tokens_never_redirect(client, sent):
    campaign, sends, mails = sent
    first, second = list(sends.values())[:2]
    link = TrackedLink.objects.filter(variant=first.variant).first()
    good = tokens.make_token(tokens.CLICK, first.pk, link.url_hash)
    body, _, signature = good.rpartition(".")
    attempts = [
        good[:-1] + ("A" if good[-1] != "A" else "B"),  # signature altered
        f"{tokens.CLICK}{second.pk:x}.{link.url_hash}.{signature}",  # another send, same signature
        f"{body[:-1]}{'0' if body[-1] != '0' else '1'}.{signature}",  # another link hash
        tokens.make_token(tokens.CLICK, first.pk, "0" * 16),  # validly signed, no such stored link
        tokens.make_token(tokens.OPEN, first.pk),  # a token for another purpose
        tokens.make_token(tokens.UNSUBSCRIBE, first.pk),
        "not-a-token",
    ]
    for token in attempts:
        response = client.get(f"/t/c/{token}/")
        assert response.status_code == 404, token
    # No parameter of the request can choose the destination.
    response = client.get(f"/t/c/{good}/?url=https://evil.example/&next=https://evil.example/")
    assert response.status_code == 302 and response["Location"] == link.url
    assert client.get("/t/c/..%2F..%2Fevil/").status_code == 404
    assert TrackingEvent.objects.filter(kind=TrackingKind.CLICK).count() == 1


def test_open_pixel_records_human_and_machine_opens_apart(client, sent):
    campaign, sends, mails = sent
    address = next(iter(mails))
    pixel = re.search(r'src="(https://testserver/t/o/[^"]+)"', _html(mails[address])).group(1)
    for agent, ip in [
        (HUMAN, "203.0.113.9"),
        ("Mozilla/5.0", "198.51.100.4"),
        (HUMAN, "17.58.1.1"),
        ("Barracuda Sentinel", "1.2.3.4"),
    ]:
        response = client.get(_path(pixel), HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)
        assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    events = list(TrackingEvent.objects.filter(kind=TrackingKind.OPEN).order_by("id"))
    assert [e.machine for e in events] == [False, True, True, True]
    assert events[1].machine_reason == "apple mail privacy protection"
    assert events[3].machine_reason == "security scanner or link preview"
    # A forged pixel still answers with the image (mail clients must not show a broken image) but records nothing.
    assert client.get("/t/o/forged.abc.gif").status_code == 200
    assert TrackingEvent.objects.filter(kind=TrackingKind.OPEN).count() == 4
    report = campaign_report(campaign=campaign)
    assert report["totals"]["opens_human"] == 1 and report["totals"]["opens_machine"] == 1


def test_fast_opens_count_as_machine_opens(settings):
    settings.CAMPAIGN_MACHINE_OPEN_SECONDS = 5
    now = timezone.now()
    assert (
        machine_reason(user_agent=HUMAN, ip=None, sent_at=now - timedelta(seconds=2), now=now)
        == "within 5 s of delivery"
    )
    assert machine_reason(user_agent=HUMAN, ip=None, sent_at=now - timedelta(minutes=2), now=now) == ""
    assert machine_reason(user_agent="", ip=None, sent_at=None, now=now) == "no user agent"
    assert machine_reason(user_agent="python-requests/2.32", ip=None, sent_at=None, now=now) != ""


def test_unsubscribe_get_only_asks_and_post_unsubscribes(client, sent):
    campaign, sends, mails = sent
    address = next(iter(mails))
    header = mails[address]["List-Unsubscribe"]
    url = _path(header.strip("<>"))
    customer = sends[address].customer

    page = client.get(url)
    assert page.status_code == 200 and b'<form method="post">' in page.content
    assert CustomerConsent.objects.get(customer=customer, channel="email").status == "granted"

    done = client.post(url, {"confirm": "yes"})
    assert done.status_code == 200 and b"You are unsubscribed" in done.content
    assert CustomerConsent.objects.get(customer=customer, channel="email").status == "withdrawn"
    record = ConsentRecord.objects.filter(customer=customer).order_by("-id").first()
    assert record.action == "withdrawn" and record.source == "unsubscribe_link"
    # A second POST (mail clients retry) records nothing more.
    client.post(url, {"confirm": "yes"})
    assert ConsentRecord.objects.filter(customer=customer, action="withdrawn").count() == 1
    assert TrackingEvent.objects.filter(kind=TrackingKind.UNSUBSCRIBE).count() == 1


def test_rfc8058_one_click_post(client, sent):
    campaign, sends, mails = sent
    address = list(mails)[1]
    mail = mails[address]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = _path(mail["List-Unsubscribe"].strip("<>"))
    response = client.post(
        url, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    customer = sends[address].customer
    assert CustomerConsent.objects.get(customer=customer, channel="email").status == "withdrawn"
    assert ConsentRecord.objects.filter(customer=customer).latest("id").source == "unsubscribe_one_click"


def test_tampered_unsubscribe_tokens_are_rejected(client, sent):
    campaign, sends, mails = sent
    send = next(iter(sends.values()))
    good = tokens.make_token(tokens.UNSUBSCRIBE, send.pk)
    for token in [
        good[:-2] + "xx",
        tokens.make_token(tokens.OPEN, send.pk),
        f"u{send.pk + 1:x}.{good.rpartition('.')[2]}",
    ]:
        assert client.post(f"/t/u/{token}/", {"confirm": "yes"}).status_code == 404
        assert client.get(f"/t/u/{token}/").status_code == 404
    assert CustomerConsent.objects.filter(status="withdrawn").count() == 0


def _signed(settings, payload: dict, *, at: int | None = None) -> tuple[bytes, str]:
    from campaigns.delivery.push import signature_header

    body = json.dumps(payload).encode()
    return body, signature_header(settings.DELIVERY_WEBHOOK_SECRET, at or int(time.time()), body)


def test_signed_bounce_webhook_suppresses_once_and_refuses_replays(client, sent, settings):
    settings.DELIVERY_WEBHOOK_SECRET = "hook-secret"
    campaign, sends, mails = sent
    address = next(iter(mails))
    payload = {
        "id": "evt-1",
        "type": "bounce",
        "message_id": mails[address]["Message-ID"],
        "permanent": True,
        "detail": "550 no such user",
    }
    body, signature = _signed(settings, payload)

    response = client.post(
        "/t/webhooks/delivery/", body, content_type="application/json", HTTP_X_REACHLY_SIGNATURE=signature
    )
    assert response.status_code == 200 and response.json() == {"status": "processed"}
    assert is_suppressed(address=address)
    assert Suppression.objects.get().reason == "bounced"

    replay = client.post(
        "/t/webhooks/delivery/", body, content_type="application/json", HTTP_X_REACHLY_SIGNATURE=signature
    )
    assert replay.status_code == 409
    old_body, old_signature = _signed(settings, {**payload, "id": "evt-2"}, at=int(time.time()) - 3600)
    stale = client.post(
        "/t/webhooks/delivery/",
        old_body,
        content_type="application/json",
        HTTP_X_REACHLY_SIGNATURE=old_signature,
    )
    assert stale.status_code == 401
    forged = client.post(
        "/t/webhooks/delivery/",
        body.replace(b"evt-1", b"evt-3"),
        content_type="application/json",
        HTTP_X_REACHLY_SIGNATURE=signature,
    )
    assert forged.status_code == 401
    assert client.post("/t/webhooks/delivery/", body, content_type="application/json").status_code == 401
    assert TrackingEvent.objects.filter(kind=TrackingKind.BOUNCE).count() == 1
    assert campaign_report(campaign=campaign)["totals"]["delivered"] == 19


def test_complaints_above_the_limit_pause_the_campaign_with_the_reason(
    client, settings, send_settings, smtp_sink
):
    settings.DELIVERY_WEBHOOK_SECRET = "hook-secret"
    settings.CAMPAIGN_COMPLAINT_MIN_SENT = 200
    send_settings.CAMPAIGN_CHUNK_SIZE = 400
    customers = scenario.make_customers(1000)
    campaign = launch_campaign(campaign=scenario.make_campaign(scenario.make_segment(customers)))
    write_run_ledger(run_id=campaign.runs.get().pk)
    # Send the first 400; the rest is still queued when the complaints arrive.
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=0)
    sent = list(Send.objects.filter(campaign=campaign, state=SendState.SENT)[:2])
    statuses = []
    for index, send in enumerate(sent):
        body, signature = _signed(settings, {"id": f"c{index}", "type": "complaint", "send_id": send.pk})
        response = client.post(
            "/t/webhooks/delivery/", body, content_type="application/json", HTTP_X_REACHLY_SIGNATURE=signature
        )
        assert response.status_code == 200
        campaign.refresh_from_db()
        statuses.append(campaign.status)
    # 1 of 400 is 0.25 %: keep going; 2 of 400 is 0.5 %: pause, and say why.
    assert statuses == [CampaignStatus.SENDING, CampaignStatus.PAUSED]
    assert "complaint rate 0.50 % (2 of 400 sent) is above 0.3 %" in campaign.status_reason
    assert all(is_suppressed(address=s.customer.email) for s in sent)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert Send.objects.filter(campaign=campaign, state=SendState.SENT).count() == 400
    assert Send.objects.filter(campaign=campaign, state=SendState.QUEUED).count() == 600


def test_attribution_takes_the_last_click_within_the_window(sent):
    campaign, sends, mails = sent
    campaign.conversion_window_hours = 72
    campaign.save()
    send = next(iter(sends.values()))
    customer = send.customer
    now = timezone.now()

    def event(kind, hours_ago, machine=False):
        return TrackingEvent.objects.create(
            send=send,
            campaign=campaign,
            variant=send.variant,
            customer=customer,
            kind=kind,
            machine=machine,
            occurred_at=now - timedelta(hours=hours_ago),
        )

    event(TrackingKind.CLICK, 100)  # outside the 72 h window
    in_window = event(TrackingKind.CLICK, 48)
    last_click = event(TrackingKind.CLICK, 24)
    event(TrackingKind.OPEN, 2)  # a later open does not beat a click
    event(TrackingKind.CLICK, 1, machine=True)  # a scanner's click does not count
    order = Order.objects.create(external_id="o-1", customer=customer, placed_at=now, total=Decimal("42.50"))
    later = Order.objects.create(
        external_id="o-future", customer=customer, placed_at=now + timedelta(hours=100), total=Decimal("9")
    )

    assert attribute_orders(order_ids=[order.pk, later.pk]) == 1
    conversion = Conversion.objects.get(order=order)
    assert conversion.touch == "click" and conversion.touched_at == last_click.occurred_at
    assert conversion.touched_at != in_window.occurred_at
    assert not Conversion.objects.filter(order=later).exists()  # nothing within 72 h before it
    assert attribute_orders(order_ids=[order.pk]) == 0  # once per order
    report = campaign_report(campaign=campaign)
    assert report["totals"]["conversions"] == 1 and report["totals"]["revenue"] == "42.50"


def test_attribution_falls_back_to_the_last_open_and_reads_new_orders_by_cursor(sent):
    campaign, sends, mails = sent
    send = next(iter(sends.values()))
    now = timezone.now()
    TrackingEvent.objects.create(
        send=send,
        campaign=campaign,
        variant=send.variant,
        customer=send.customer,
        kind=TrackingKind.OPEN,
        occurred_at=now - timedelta(hours=3),
    )
    Order.objects.create(external_id="o-2", customer=send.customer, placed_at=now, total=Decimal("10"))
    assert attribute_new_orders() == 1
    assert Conversion.objects.get().touch == "open"
    assert attribute_new_orders() == 0
