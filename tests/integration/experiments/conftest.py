"""The campaign tests' real parts (SMTP sink, workers) and an experiment scenario builder."""

from __future__ import annotations

import random
import re

import pytest

from tests.integration.campaigns.conftest import (  # noqa: F401
    real_celery,
    send_settings,
    smtp_sink,
    start_worker,
)
from tests.integration.campaigns.real_parts import CeleryBeat

HUMAN = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Safari/605.1.15"
)


@pytest.fixture
def start_beat():
    beats: list[CeleryBeat] = []

    def start(env) -> CeleryBeat:
        beat = CeleryBeat(env).start()
        beats.append(beat)
        return beat

    yield start
    for beat in beats:
        beat.stop()


def click_links(message) -> list[str]:
    html = message.get_body(("html",)).get_content()
    return [
        u.replace("https://testserver", "")
        for u in re.findall(r'href="(https://testserver/t/c/[^"]+)"', html)
    ]


def engage(client, messages, *, click_rate_by_subject: dict[str, float], seed: int) -> int:
    """Simulated customers: of each variant's messages, exactly round(rate x count) click (seeded pick).

    Exact quotas rather than a coin per message: the tests check what the pipeline does with a known
    effect, so the effect must not vary from run to run (the assignment does, with the customer ids).
    """
    rng = random.Random(seed)
    groups: dict[str, list] = {}
    for message in messages:
        parsed = message.parsed()
        subject = str(parsed["Subject"])
        marker = next((m for m in click_rate_by_subject if subject.endswith(m) and m), None)
        if marker is None:
            marker = "" if "" in click_rate_by_subject else None
        assert marker is not None, subject
        groups.setdefault(marker, []).append(parsed)
    clicks = 0
    for marker, group in sorted(groups.items()):
        for parsed in rng.sample(group, round(click_rate_by_subject[marker] * len(group))):
            response = client.get(click_links(parsed)[0], HTTP_USER_AGENT=HUMAN)
            assert response.status_code == 302
            clicks += 1
    return clicks


def engaged_experiment(
    n: int,
    *,
    click_rates: dict[str, float],
    order_rates: dict[str, float] | None = None,
    seed: int = 0,
    days: int = 3,
    **experiment_fields,
):
    """An A/B experiment whose ledger says sent `days` ago, with clicks and orders at exactly known rates.

    For results, API and admin tests that need engagement without delivering mail: the ledger and
    the tracking rows are the ones the pipeline writes, only their contents are chosen.
    """
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from campaigns.models import Arm, Send, SendState, TrackingEvent, TrackingKind
    from campaigns.services.launch import launch_campaign, write_run_ledger
    from customers.models import Order
    from experiments.models import Experiment
    from tests.integration.campaigns import scenario

    rng = random.Random(seed)
    customers = scenario.make_customers(n)
    campaign = scenario.make_campaign(scenario.make_segment(customers), variants=len(click_rates))
    experiment = Experiment.objects.create(campaign=campaign, **experiment_fields)
    campaign = launch_campaign(campaign=campaign)
    write_run_ledger(run_id=campaign.runs.get().pk)
    start = timezone.now() - timedelta(days=days)
    Send.objects.filter(campaign=campaign, arm=Arm.VARIANT).update(state=SendState.SENT, sent_at=start)
    names = {v.pk: v.name for v in campaign.variants.all()}
    by_arm: dict[str, list] = {}
    for send in Send.objects.filter(campaign=campaign, state=SendState.SENT).order_by("pk"):
        by_arm.setdefault(names[send.variant_id], []).append(send)
    events, orders = [], []
    for name, sends in sorted(by_arm.items()):
        # Exact quotas per arm (seeded pick of who): the effect is the same in every run.
        clickers = {s.pk for s in rng.sample(sends, round(click_rates[name] * len(sends)))}
        buyers = (
            {s.pk for s in rng.sample(sends, round(order_rates[name] * len(sends)))} if order_rates else set()
        )
        for send in sends:
            when = start + timedelta(hours=rng.uniform(1, 24 * days - 1))
            if send.pk in clickers:
                for kind in (TrackingKind.OPEN, TrackingKind.CLICK):
                    events.append(
                        TrackingEvent(
                            send=send,
                            campaign=campaign,
                            variant_id=send.variant_id,
                            customer_id=send.customer_id,
                            kind=kind,
                            occurred_at=when,
                        )
                    )
            if send.pk in buyers:
                orders.append(
                    Order(
                        external_id=f"o-{campaign.pk}-{send.pk}",
                        customer_id=send.customer_id,
                        placed_at=when + timedelta(minutes=5),
                        total=Decimal(f"{rng.uniform(10, 90):.2f}"),
                    )
                )
    TrackingEvent.objects.bulk_create(events)
    Order.objects.bulk_create(orders)
    experiment.refresh_from_db()
    return experiment
