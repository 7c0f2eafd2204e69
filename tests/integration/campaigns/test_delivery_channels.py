"""Push over Web Push and a generic HTTP provider to a real local receiver; ESPs through anymail;
the Redis token bucket, and what happens when Redis is not there."""

from __future__ import annotations

import base64
import json
import os
import time

import http_ece
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core import mail

from campaigns.delivery import throttle
from campaigns.delivery.push import verify_signature
from campaigns.models import Channel, Send, SendState, TrackedLink
from campaigns.services.launch import launch_campaign, write_run_ledger
from campaigns.services.sending import send_campaign_chunks
from customers.models import PushSubscription
from tests.integration.campaigns import scenario
from tests.integration.campaigns.real_parts import PrivateRedis

pytestmark = pytest.mark.django_db


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def push_campaign(customers):
    campaign = launch_campaign(
        campaign=scenario.make_campaign(scenario.make_segment(customers), channel=Channel.PUSH, name="Push")
    )
    write_run_ledger(run_id=campaign.runs.get().pk)
    return campaign


def test_http_push_provider_gets_signed_json_and_gone_subscriptions_are_deactivated(
    send_settings, push_receiver, settings
):
    settings.PUSH_HTTP_SECRET = "provider-secret"
    customers = scenario.make_customers(4, channel=Channel.PUSH)
    paths = ["/ok", "/ok", "/gone", "/down"]
    push_receiver.statuses = {"/gone": 410, "/down": 503}
    for customer, path in zip(customers, paths, strict=True):
        PushSubscription.objects.create(
            customer=customer,
            kind=PushSubscription.Kind.HTTP,
            endpoint=push_receiver.url(path),
            token=f"dev-{customer.pk}",
        )
    campaign = push_campaign(customers)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)

    outcome = {s.customer_id: s for s in Send.objects.filter(campaign=campaign)}
    assert outcome[customers[0].pk].state == SendState.SENT
    assert outcome[customers[2].pk].state == SendState.FAILED and "gone" in outcome[customers[2].pk].reason
    assert (
        outcome[customers[3].pk].state == SendState.QUEUED and "HTTP 503" in outcome[customers[3].pk].reason
    )
    assert not PushSubscription.objects.get(customer=customers[2]).active
    assert PushSubscription.objects.get(customer=customers[3]).active

    request = next(r for r in push_receiver.requests if r.path == "/ok")
    assert verify_signature("provider-secret", request.headers["X-Reachly-Signature"], request.body)
    assert not verify_signature("another-secret", request.headers["X-Reachly-Signature"], request.body)
    payload = request.json()
    assert payload["to"].startswith("dev-") and payload["title"].startswith("Hi Name")
    assert payload["url"].startswith("https://testserver/t/p/")
    assert payload["message_id"] == Send.objects.get(campaign=campaign, customer=customers[0]).message_id
    assert TrackedLink.objects.filter(url__startswith="https://shop.example.com/push").exists()


def test_web_push_is_encrypted_for_the_subscription_and_signed_with_vapid(
    send_settings, push_receiver, settings, client
):
    vapid = ec.generate_private_key(ec.SECP256R1())
    settings.WEBPUSH_VAPID_PRIVATE_KEY = b64(vapid.private_numbers().private_value.to_bytes(32, "big"))
    settings.WEBPUSH_VAPID_SUBJECT = "mailto:push@shop.example.com"
    browser = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    customer = scenario.make_customers(1, channel=Channel.PUSH)[0]
    PushSubscription.objects.create(
        customer=customer,
        kind=PushSubscription.Kind.WEBPUSH,
        endpoint=push_receiver.url("/wp/device-1"),
        p256dh=b64(
            browser.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        ),
        auth=b64(auth),
    )
    campaign = push_campaign([customer])
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert Send.objects.get(campaign=campaign).state == SendState.SENT

    request = push_receiver.requests[0]
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["authorization"].startswith("vapid t=") and headers["content-encoding"] == "aes128gcm"
    payload = json.loads(
        http_ece.decrypt(request.body, private_key=browser, auth_secret=auth, version="aes128gcm")
    )
    assert payload["title"] == "Hi Name0"
    # The push's click goes through tracking and lands on the stored URL.
    response = client.get(
        payload["url"].replace("https://testserver", ""),
        HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux) Firefox/128.0",
    )
    assert response.status_code == 302 and response["Location"].startswith("https://shop.example.com/push")


def test_web_push_410_deactivates_the_subscription(send_settings, push_receiver, settings):
    vapid = ec.generate_private_key(ec.SECP256R1())
    settings.WEBPUSH_VAPID_PRIVATE_KEY = b64(vapid.private_numbers().private_value.to_bytes(32, "big"))
    browser = ec.generate_private_key(ec.SECP256R1())
    customer = scenario.make_customers(1, channel=Channel.PUSH)[0]
    push_receiver.statuses = {"/wp/expired": 410}
    PushSubscription.objects.create(
        customer=customer,
        endpoint=push_receiver.url("/wp/expired"),
        p256dh=b64(
            browser.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        ),
        auth=b64(os.urandom(16)),
    )
    campaign = push_campaign([customer])
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    send = Send.objects.get(campaign=campaign)
    assert send.state == SendState.FAILED and "HTTP 410" in send.reason
    assert not PushSubscription.objects.get(customer=customer).active


def test_customers_without_a_push_subscription_are_suppressed_with_the_reason(send_settings):
    customers = scenario.make_customers(2, channel=Channel.PUSH)
    campaign = push_campaign(customers)
    assert set(Send.objects.filter(campaign=campaign).values_list("reason", flat=True)) == {
        "no active push subscription"
    }


def test_an_esp_through_anymail(send_settings, settings):
    """anymail's test backend stands in for an ESP: messages, metadata and ESP ids are recorded."""
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.ANYMAIL = {}
    customers = scenario.make_customers(5)
    campaign = launch_campaign(campaign=scenario.make_campaign(scenario.make_segment(customers)))
    write_run_ledger(run_id=campaign.runs.get().pk)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    sends = list(Send.objects.filter(campaign=campaign))
    assert {s.state for s in sends} == {SendState.SENT}
    assert all(s.provider_message_id for s in sends)  # the ESP's own ids, for its webhooks
    assert len(mail.outbox) == 5
    assert {m.extra_headers["Message-ID"] for m in mail.outbox} == {s.message_id for s in sends}
    assert mail.outbox[0].extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/t/c/" in mail.outbox[0].alternatives[0][0]  # the ESP gets the tracked HTML
    assert {m.anymail_test_params["metadata"]["send_id"] for m in mail.outbox} == {str(s.pk) for s in sends}


def test_provider_errors_map_to_retry_or_permanent_failure():
    import smtplib

    import requests
    from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
    from django.core.mail import BadHeaderError

    from campaigns.delivery.email import classify

    def esp_error(status):
        response = requests.Response()
        response.status_code, response.reason, response._content = status, "reason", b"{}"
        return AnymailAPIError("ESP said no", status_code=status, response=response)

    cases = {
        "retry": [
            smtplib.SMTPRecipientsRefused({"a@example.com": (452, b"mailbox full")}),
            smtplib.SMTPDataError(421, b"try later"),
            smtplib.SMTPServerDisconnected("gone"),
            TimeoutError("slow"),
            ConnectionRefusedError(),
            esp_error(429),
            esp_error(503),
        ],
        "failed": [
            smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no such user")}),
            smtplib.SMTPDataError(554, b"rejected as spam"),
            smtplib.SMTPSenderRefused(553, b"sender not allowed", "news@example.com"),
            esp_error(400),
            AnymailRecipientsRefused("all refused"),
            BadHeaderError("Header values can't contain newlines"),
        ],
    }
    for kind, errors in cases.items():
        for error in errors:
            assert classify(error).kind == kind, error


def test_token_bucket_in_redis_is_shared_and_resets_when_redis_restarts(settings):
    private = PrivateRedis().start()
    try:
        settings.REDIS_URL = private.url(0)
        first = throttle.Throttle("smtp-test", 10)
        second = throttle.Throttle("smtp-test", 10)  # another worker, same provider
        assert first.reserve(10) == 0  # a full bucket: one second's worth
        wait = second.reserve(5)
        assert 0.4 < wait <= 0.55  # the other worker queues behind, it does not get its own bucket
        private.restart(pause=0.2)
        # Redis lost the bucket: the rate restarts from a full bucket, nothing breaks.
        assert throttle.Throttle("smtp-test", 10).reserve(10) == 0
        assert redis.Redis.from_url(private.url(0)).exists("reachly:throttle:smtp-test")
    finally:
        private.stop()


def test_token_bucket_falls_back_to_a_local_bucket_without_redis(settings):
    private = PrivateRedis().start()
    private.stop()  # a port where nothing listens
    settings.REDIS_URL = private.url(0)
    bucket = throttle.Throttle("smtp-offline", 20)
    started = time.monotonic()
    waits = [bucket.reserve(10) for _ in range(3)]
    assert time.monotonic() - started < 5
    assert waits[0] == 0 and waits[1] == 0 and 0.4 < waits[2] <= 0.6  # 20/s locally


def test_a_campaign_rate_limits_its_sends(send_settings, smtp_sink):
    customers = scenario.make_customers(30)
    campaign = launch_campaign(
        campaign=scenario.make_campaign(scenario.make_segment(customers), send_rate=20)
    )
    write_run_ledger(run_id=campaign.runs.get().pk)
    started = time.monotonic()
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert smtp_sink.count() == 30
    assert time.monotonic() - started >= 0.45  # 30 at 20/s with a 20-message burst: at least half a second


def test_esp_bounces_and_complaints_arrive_through_anymail_tracking(send_settings, settings):
    """An ESP's webhook, normalised by anymail, suppresses the address -- once per event id."""
    from anymail.signals import AnymailTrackingEvent, tracking

    from campaigns.models import TrackingEvent
    from customers.selectors import is_suppressed

    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    customers = scenario.make_customers(3)
    campaign = launch_campaign(campaign=scenario.make_campaign(scenario.make_segment(customers)))
    write_run_ledger(run_id=campaign.runs.get().pk)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    bounced, complained = Send.objects.filter(campaign=campaign).select_related("customer").order_by("id")[:2]

    def emit(event_id, event_type, **fields):
        event = AnymailTrackingEvent(
            event_type=event_type, event_id=event_id, recipient="x@example.com", **fields
        )
        tracking.send(sender=object, event=event, esp_name="Postmark")

    emit("pm-1", "bounced", metadata={"send_id": str(bounced.pk)}, reject_reason="bounced", description="550")
    emit("pm-1", "bounced", metadata={"send_id": str(bounced.pk)}, reject_reason="bounced")  # replayed
    emit("pm-2", "complained", message_id=complained.provider_message_id)
    emit("pm-3", "opened", metadata={"send_id": str(bounced.pk)})  # not ours to act on
    assert is_suppressed(address=bounced.customer.email) and is_suppressed(address=complained.customer.email)
    assert TrackingEvent.objects.filter(kind="bounce").count() == 1
    assert TrackingEvent.objects.get(kind="complaint").send == complained
