"""Webhooks against a real HTTP receiver on localhost that verifies signatures like a customer would."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from customers.services import upsert_customers
from tests.factories.webhooks import WebhookEndpointFactory
from webhooks.models import OutboxMessage, WebhookDelivery
from webhooks.services import claim_due, dispatch_due, fan_out, publish, sign, verify_signature

pytestmark = pytest.mark.django_db
SECRET = "whsec_receiver"


class Receiver:
    def __init__(self, fail_first: int = 0):
        self.received: list[dict] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify_signature(secret=SECRET, header=self.headers["X-Reachly-Signature"], body=body)
                outer.received.append(
                    {"ok": ok, "event": self.headers["X-Reachly-Event-Id"], "body": json.loads(body)}
                )
                status = 500 if len(outer.received) <= outer.fail_first else (200 if ok else 401)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"boom" if status == 500 else b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_signed_delivery_to_subscribed_endpoint_only():
    with Receiver() as receiver:
        WebhookEndpointFactory(url=receiver.url, secret=SECRET, topics=["customer.created"])
        WebhookEndpointFactory(url=receiver.url, secret=SECRET, topics=["points.changed"])
        upsert_customers(rows=[{"external_id": "w1", "email": "w1@example.com"}])
        counts = dispatch_due()
    assert counts == {"fanned_out": 1, "delivered": 1, "retrying": 0, "failed": 0}
    (hit,) = receiver.received
    assert hit["ok"] is True
    assert hit["body"]["topic"] == "customer.created"
    assert hit["body"]["data"]["external_id"] == "w1"
    assert hit["event"] == hit["body"]["id"]
    assert OutboxMessage.objects.get().fanned_out_at is not None
    assert WebhookDelivery.objects.get().status == "delivered"


def test_retries_after_500_with_backoff_then_delivers():
    with Receiver(fail_first=2) as receiver:
        WebhookEndpointFactory(url=receiver.url, secret=SECRET)
        publish(topic="points.changed", payload={"points": 5})
        now = timezone.now()
        dispatch_due(now=now)
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
        assert delivery.next_attempt_at == now + timedelta(seconds=30)
        assert "HTTP 500" in delivery.last_error
        assert dispatch_due(now=now)["delivered"] == 0  # not due yet
        dispatch_due(now=now + timedelta(seconds=31))
        delivery.refresh_from_db()
        assert delivery.next_attempt_at == now + timedelta(seconds=31 + 60)
        dispatch_due(now=now + timedelta(seconds=200))
        delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert len({hit["event"] for hit in receiver.received}) == 1


def test_gives_up_after_max_attempts_with_reason(settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    with Receiver(fail_first=99) as receiver:
        WebhookEndpointFactory(url=receiver.url, secret=SECRET)
        publish(topic="points.changed", payload={})
        now = timezone.now()
        dispatch_due(now=now)
        dispatch_due(now=now + timedelta(hours=1))
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"
    assert delivery.last_error.startswith("Gave up after 2 attempts. HTTP 500")


def test_unreachable_endpoint_is_retried_not_crashed():
    WebhookEndpointFactory(url="http://127.0.0.1:9/nothing-listens", secret=SECRET)
    publish(topic="points.changed", payload={})
    assert dispatch_due()["retrying"] == 1
    assert "ConnectionError" in WebhookDelivery.objects.get().last_error


def test_claims_are_leased_so_two_dispatchers_do_not_double_send():
    WebhookEndpointFactory(secret=SECRET)
    for i in range(10):
        publish(topic="points.changed", payload={"i": i})
    fan_out()
    first = claim_due(limit=6)
    second = claim_due(limit=6)
    assert len(first) == 6 and len(second) == 4 and not set(first) & set(second)
    assert claim_due(limit=6) == []


def test_signature_scheme():
    header = sign(secret="s", timestamp=1700000000, body=b'{"a":1}')
    assert (
        header
        == "t=1700000000,v1=" + __import__("hmac").new(b"s", b'1700000000.{"a":1}', "sha256").hexdigest()
    )
    assert verify_signature(secret="s", header=header, body=b'{"a":1}', now=1700000010)
    assert not verify_signature(secret="s", header=header, body=b'{"a":2}', now=1700000010)
    assert not verify_signature(secret="s", header=header, body=b'{"a":1}', now=1700009999)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_dispatchers_never_double_send():
    """Two dispatchers in their own threads and connections share the work through SKIP LOCKED."""
    from django.db import connection

    with Receiver() as receiver:
        WebhookEndpointFactory(url=receiver.url, secret=SECRET)
        for i in range(40):
            publish(topic="points.changed", payload={"i": i})
        fan_out()
        results = []

        def run():
            try:
                results.append(dispatch_due(batch_size=3))
            finally:
                connection.close()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    events = [hit["event"] for hit in receiver.received]
    assert len(events) == 40 == len(set(events))
    assert sum(r["delivered"] for r in results) == 40
    assert all(r["delivered"] > 0 for r in results), results  # both took a share
    assert WebhookDelivery.objects.filter(status="delivered").count() == 40


def test_prune_keeps_pending_and_recent_messages():
    from webhooks.services import prune_outbox

    endpoint = WebhookEndpointFactory(secret=SECRET)
    old, pending, recent = (publish(topic="points.changed", payload={"n": n}) for n in range(3))
    fan_out()
    long_ago = timezone.now() - timedelta(days=60)
    OutboxMessage.objects.filter(pk__in=[old.pk, pending.pk]).update(fanned_out_at=long_ago)
    WebhookDelivery.objects.filter(message=old, endpoint=endpoint).update(status="delivered")
    WebhookDelivery.objects.filter(message=recent).update(status="delivered")
    assert prune_outbox() == 1
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {pending.pk, recent.pk}
