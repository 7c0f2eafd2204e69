"""Results are computed once per data version and served from the Redis cache until new data arrives."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Arm, Send, SendState, TrackingEvent, TrackingKind
from campaigns.services.launch import launch_campaign, write_run_ledger
from customers.models import Order
from experiments.models import Experiment
from tests.integration.campaigns import scenario
from tests.integration.experiments import dimensions as d

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment(send_settings):
    rng = random.Random(7)
    customers = scenario.make_customers(300)
    campaign = launch_campaign(campaign=d.experiment_campaign(customers, variants=[{}, {}]))
    write_run_ledger(run_id=campaign.runs.get().pk)
    start = timezone.now() - timedelta(days=2)
    Send.objects.filter(campaign=campaign, arm=Arm.VARIANT).update(state=SendState.SENT, sent_at=start)
    events = [
        TrackingEvent(
            send=send,
            campaign=campaign,
            variant_id=send.variant_id,
            customer_id=send.customer_id,
            kind=TrackingKind.CLICK,
            occurred_at=start + timedelta(hours=rng.uniform(1, 40)),
        )
        for send in Send.objects.filter(campaign=campaign).order_by("customer__external_id")
        if rng.random() < 0.2
    ]
    TrackingEvent.objects.bulk_create(events)
    return Experiment.objects.get(campaign=campaign)


def read(api, experiment) -> tuple[dict, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = api.get(f"/api/v1/experiments/{experiment.pk}/results/")
    assert response.status_code == 200, response.content
    return response.json(), [q["sql"] for q in queries.captured_queries]


def clicks(body: dict) -> dict[str, int]:
    return {arm["name"]: arm["clicks"] for arm in body["arms"]}


def test_a_second_read_is_served_from_the_cache_and_new_data_changes_the_answer(api, experiment):
    first, computing = read(api, experiment)
    second, cached = read(api, experiment)
    assert second == first  # the same computation, computed_at included
    assert len(cached) < len(computing) and len(cached) <= 6, (len(cached), len(computing))
    # The computation reads the first event of each kind per send; a cached read never does.
    assert any('MIN("campaigns_trackingevent"."occurred_at")' in q for q in computing)
    assert not any("MIN(" in q for q in cached)

    # A new click arrives: the data version moves, the results are computed again and show it.
    quiet = (
        Send.objects.filter(campaign=experiment.campaign, state=SendState.SENT)
        .exclude(tracking_events__kind=TrackingKind.CLICK)
        .order_by("customer__external_id")
        .first()
    )
    TrackingEvent.objects.create(
        send=quiet,
        campaign=experiment.campaign,
        variant_id=quiet.variant_id,
        customer_id=quiet.customer_id,
        kind=TrackingKind.CLICK,
        occurred_at=timezone.now() - timedelta(hours=1),
    )
    third, recomputing = read(api, experiment)
    assert third["computed_at"] != first["computed_at"] and third["data_version"] != first["data_version"]
    assert len(recomputing) > len(cached)
    name = quiet.variant.name
    assert clicks(third)[name] == clicks(first)[name] + 1

    # An order by a recipient (intention to treat: any order in the window counts) changes revenue.
    Order.objects.create(
        external_id="cache-order-1",
        customer_id=quiet.customer_id,
        placed_at=timezone.now() - timedelta(minutes=30),
        total=Decimal("40.00"),
    )
    fourth, _ = read(api, experiment)
    revenue = {arm["name"]: arm["revenue"] for arm in fourth["arms"]}
    before = {arm["name"]: arm["revenue"] for arm in third["arms"]}
    assert revenue[name] == pytest.approx(before[name] + 40)


def test_the_admin_results_page_reads_the_same_cache(client, admin_user, api, experiment):
    client.force_login(admin_user)
    url = f"/admin/experiments/experiment/{experiment.pk}/results/"
    with CaptureQueriesContext(connection) as computing:
        assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as cached:
        page = client.get(url)
    assert page.status_code == 200 and "click rate" in page.content.decode().lower()
    assert len(cached) < len(computing)
    assert not any("MIN(" in q["sql"] for q in cached.captured_queries)
    # The API, asked next, finds the page's computation (with the series) already there.
    _, queries = read(api, experiment)
    assert not any("MIN(" in q for q in queries)


def test_a_decision_changes_the_data_version(experiment):
    from experiments.services.results import data_version

    before = data_version(experiment)
    assert data_version(experiment) == before
    Experiment.objects.filter(pk=experiment.pk).update(state="decided", updated_at=timezone.now())
    assert data_version(experiment) != before
