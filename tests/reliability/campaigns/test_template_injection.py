"""Server-side template injection, end to end: through the preview API and through a real send.

The rendering package's own corpus (`tests/unit/rendering/injection_corpus.json`: attribute walks
to globals, format-string tricks, huge loops and outputs, file includes) is replayed here through
the doors a marketer actually has. Each payload must come back as a template error naming its part,
and never take the process down (the unit corpus test checks with an audit hook that nothing
runs); in a campaign, each customer's row fails with the reason and the rest of the campaign goes on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from campaigns.models import Send, SendState, Variant
from campaigns.services.launch import launch_campaign, write_run_ledger
from campaigns.services.sending import send_campaign_chunks
from tests.integration.campaigns import scenario

ROOT = Path(__file__).resolve().parents[3]
CORPUS = json.loads((ROOT / "tests/unit/rendering/injection_corpus.json").read_text(encoding="utf-8"))[
    "payloads"
]
EMAIL_PARTS = {"subject", "html", "text"}

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_client(db):
    from rest_framework.test import APIClient

    from access.models import ApiKey

    _, secret = ApiKey.objects.create_key(name="ssti", scopes=["templates:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def test_every_corpus_payload_is_a_template_error_in_the_preview_api(api_client, settings):
    settings.SITE_URL = "https://testserver"
    customer = scenario.make_customers(1)[0]
    scenario.store_recommendations(
        [customer], scenario.make_products(6)
    )  # payloads walk the product list too
    for entry in CORPUS:
        body = {entry["part"]: entry["template"], "customer": customer.external_id}
        response = api_client.post("/api/v1/templates/preview/", body, format="json")
        assert response.status_code == 400, (entry["id"], response.content[:300])
        errors = response.json()["errors"]
        assert errors and errors[0]["field"] == entry["part"] and errors[0]["message"], entry["id"]
    # The isolated renderer survived every payload (it is restarted after a kill, never left dead).
    assert api_client.post(
        "/api/v1/templates/preview/", {"subject": "ok {{ 1 + 1 }}"}, format="json"
    ).json() == {"subject": "ok 2"}


def test_payloads_in_a_campaign_fail_their_rows_and_the_rest_is_sent(send_settings, smtp_sink):
    """Eight payloads as eight variants of one campaign; one harmless variant keeps sending."""
    picked = [e for e in CORPUS if e["part"] in EMAIL_PARTS]
    chosen = [picked[i * len(picked) // 7] for i in range(7)]
    customers = scenario.make_customers(80)
    campaign = scenario.make_campaign(scenario.make_segment(customers), variants=1)
    for index, entry in enumerate(chosen):
        parts = {"subject": "Hello", "html": "<p>Hi</p>", "text": ""}
        parts[entry["part"]] = entry["template"]
        Variant.objects.create(campaign=campaign, name=f"P{index}", **parts)
    campaign = launch_campaign(campaign=campaign)
    write_run_ledger(run_id=campaign.runs.get().pk)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=120)

    rows = list(Send.objects.filter(campaign=campaign).select_related("variant"))
    assert {r.state for r in rows if r.variant.name == "A"} == {SendState.SENT}
    poisoned = [r for r in rows if r.variant.name != "A"]
    assert poisoned and {r.state for r in poisoned} == {SendState.FAILED}
    assert all(r.reason.startswith("template error: ") for r in poisoned)
    assert smtp_sink.count() == sum(1 for r in rows if r.variant.name == "A")
