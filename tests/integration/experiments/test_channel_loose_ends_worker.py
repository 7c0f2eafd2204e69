"""A push variant's test send through a real Celery worker to the local push receiver."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from campaigns.models import Send, TestSend
from tests.integration.campaigns import scenario
from tests.integration.campaigns.conftest import push_receiver as push_receiver  # noqa: F401
from tests.integration.campaigns.conftest import worker_env
from tests.integration.experiments import dimensions as d
from tests.integration.experiments.test_variant_dimensions_worker import FAST, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_push_test_send_goes_out_from_the_worker(
    api, send_settings, smtp_sink, push_receiver, real_celery, start_worker, settings
):
    import redis

    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).flushdb()
    customers = scenario.make_customers(3)
    scenario.grant(customers, channel="push")
    d.subscribe_push(customers, push_receiver)
    campaign = d.experiment_campaign(customers, variants=[{}, {"channel": "push"}])
    worker = start_worker(worker_env(settings, email_url=smtp_sink.url, **FAST), queues="sends,default")

    response = api.post(
        f"/api/v1/campaigns/{campaign.pk}/test-send/",
        {"variant": "B", "test_customers": [customers[1].external_id]},
        format="json",
    )
    assert response.status_code == 202, response.content
    test_send = TestSend.objects.get(pk=response.json()["id"])

    def delivered():
        test_send.refresh_from_db()
        return test_send.state != TestSend.State.QUEUED

    wait_for(delivered, 60, "the push test send", worker)
    assert test_send.state == TestSend.State.SENT, test_send.result
    assert [r.json()["to"] for r in push_receiver.requests] == [f"dev-{customers[1].pk}"]
    assert push_receiver.requests[0].json()["title"] == f"[TEST] Hi {customers[1].first_name}"
    assert smtp_sink.count() == 0 and Send.objects.count() == 0
