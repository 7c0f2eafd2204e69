"""/metrics: Prometheus gauges read from the database and the broker, and who may scrape them."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


def _gauges(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_metrics_count_customers_and_report_services(client):
    CustomerFactory.create_batch(3)
    CustomerFactory(deleted_at=timezone.now())

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    gauges = _gauges(response.content.decode())
    assert gauges["reachly_customers"] == 3
    assert gauges["reachly_database_up"] == 1
    assert gauges["reachly_broker_up"] == 1  # the test broker is a real Redis
    assert 'reachly_queue_length{queue="sends"}' in gauges
    assert gauges['reachly_sends_open{state="due"}'] == 0


def test_public_addresses_are_refused_without_a_token(client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403


def test_a_configured_token_is_required_and_checked(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token", REMOTE_ADDR="203.0.113.9")
    assert ok.status_code == 200
