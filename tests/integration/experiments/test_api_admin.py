"""The results over the API and in the admin: verdict, SRM, series, the chart, the holdout report."""

from __future__ import annotations

import pytest

from campaigns.models import Send
from experiments.models import Experiment, ExperimentState
from tests.integration.admin_forms import admin_form_data
from tests.integration.campaigns import scenario
from tests.integration.experiments.conftest import engaged_experiment

pytestmark = pytest.mark.django_db


@pytest.fixture
def clear_winner(send_settings):
    return engaged_experiment(
        1200,
        click_rates={"A": 0.10, "B": 0.25},
        order_rates={"A": 0.05, "B": 0.05},
        seed=11,
        metric="click_rate",
        method="sequential",
        max_unsubscribe_rate="0.01",
    )


def test_results_api_has_verdict_srm_comparisons_and_series(api, clear_winner):
    response = api.get(f"/api/v1/experiments/{clear_winner.pk}/results/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["metric_label"] == "click rate" and body["method"] == "sequential"
    assert [a["name"] for a in body["arms"]] == ["A", "B"]
    assert sum(a["recipients"] for a in body["arms"]) == 1200
    assert body["srm"]["mismatch"] is False and body["srm"]["warning"] is None
    comparison = body["comparisons"][0]
    assert comparison["direction"] == 1
    assert comparison["chance_to_win"] > 0.99 and comparison["expected_loss"] < 0.001
    assert comparison["p_value"] < 0.05  # the sequential method's always-valid p-value
    low, high = comparison["relative_ci"]
    assert 0 < low < comparison["relative_effect"] < high
    assert body["verdict"].startswith("Variant B raised click rate by ")
    assert "always-valid CI" in body["verdict"]
    assert len(body["series"]) >= 3
    assert body["series"][-1]["comparisons"][0]["effect"] == pytest.approx(comparison["effect"])
    # The band narrows as recipients engage over the days.
    # (A point has no interval while the baseline has no clicks yet: a relative effect is undefined.)
    bands = [p["comparisons"][0] for p in body["series"]]
    widths = [b["ci_high"] - b["ci_low"] for b in bands if b["ci_low"] is not None]
    assert len(widths) >= 2 and widths[-1] < widths[0]
    assert {g["metric"] for g in body["guardrails"]} == {"unsubscribe rate"}
    again = api.get(f"/api/v1/experiments/{clear_winner.pk}/results/").json()
    assert {k: v for k, v in again.items() if k != "series"} == {
        k: v for k, v in body.items() if k != "series"
    }


def test_a_broken_split_raises_the_srm_warning(api, clear_winner, client, admin_user):
    client.force_login(admin_user)
    # Lose 40 % of B's recipients, as a broken redirect or tracking bug would.
    lost = list(
        Send.objects.filter(campaign=clear_winner.campaign, variant__name="B").values_list("pk", flat=True)
    )
    Send.objects.filter(pk__in=lost[: int(len(lost) * 0.4)]).update(state="failed")
    body = api.get(f"/api/v1/experiments/{clear_winner.pk}/results/?series=false").json()
    assert body["srm"]["mismatch"] is True
    assert body["verdict"].startswith("WARNING - SAMPLE RATIO MISMATCH")
    page = client.get(f"/admin/experiments/experiment/{clear_winner.pk}/results/").content.decode()
    banner = page.split('id="srm-banner"')[0].rsplit("<div", 1)[1]
    assert 'class="errornote"' in banner and 'role="alert"' in banner
    assert "SAMPLE RATIO MISMATCH" in page.split('id="srm-banner"')[1].split("</div>")[0]
    assert body["series"] is None


def test_bad_input_gets_field_errors_not_500(api, clear_winner, make_api_client):
    assert api.get(f"/api/v1/experiments/{clear_winner.pk}/results/?series=maybe").status_code == 400
    assert api.get("/api/v1/experiments/holdout/?days=0").status_code == 400
    # Started experiments cannot be redesigned; a draft campaign's can, and is validated.
    changed = api.patch(f"/api/v1/experiments/{clear_winner.pk}/", {"alpha": "0.1"})
    assert changed.status_code == 400
    draft = scenario.make_campaign(None, variants=2)
    created = api.post(
        "/api/v1/experiments/",
        {"campaign": draft.pk, "method": "bayesian", "correction": "holm"},
    )
    assert created.status_code == 400 and "correction" in str(created.json()), created.json()
    created = api.post(
        "/api/v1/experiments/",
        {"campaign": draft.pk, "mode": "test_then_send", "sample_percent": "95"},
    )
    assert created.status_code == 400 and "sample_percent" in str(created.json())
    created = api.post(
        "/api/v1/experiments/",
        {"campaign": draft.pk, "mode": "test_then_send", "sample_percent": "30", "metric": "open_rate"},
    )
    assert created.status_code == 201, created.content
    assert created.json()["state"] == ExperimentState.DESIGN
    assert api.post("/api/v1/experiments/", {"campaign": draft.pk}).status_code == 400  # one per campaign
    reader = make_api_client("campaigns:read")
    assert reader.get(f"/api/v1/experiments/{clear_winner.pk}/results/").status_code == 403
    assert api.post(f"/api/v1/experiments/{clear_winner.pk}/decide/", {"now": True}).status_code == 409


def test_holdout_report_compares_revenue_per_customer(api, settings):
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from customers.models import Order
    from experiments.assignment import in_global_holdout

    settings.CAMPAIGN_GLOBAL_HOLDOUT_PERCENT = 10
    customers = scenario.make_customers(600)
    held = [
        c
        for c in customers
        if in_global_holdout(c.pk, share=0.10, salt=settings.CAMPAIGN_GLOBAL_HOLDOUT_SALT)
    ]
    assert 30 < len(held) < 100
    held_ids = {c.pk for c in held}
    now = timezone.now()
    Order.objects.bulk_create(
        [
            Order(
                external_id=f"h{c.pk}",
                customer=c,
                placed_at=now - timedelta(days=2),
                total=Decimal("20.00") if c.pk in held_ids else Decimal("30.00"),
            )
            for c in customers
            if c.pk % 2 == 0
        ]
    )
    body = api.get("/api/v1/experiments/holdout/?days=30").json()
    groups = {g["group"]: g for g in body["groups"]}
    assert groups["holdout"]["customers"] == len(held)
    assert groups["holdout"]["customers"] + groups["everyone_else"]["customers"] == 600
    low, high = body["comparison"]["absolute_ci"]
    assert low < body["comparison"]["absolute_effect"] < high
    assert body["comparison"]["absolute_effect"] == pytest.approx(
        groups["everyone_else"]["revenue_per_customer"] - groups["holdout"]["revenue_per_customer"]
    )
    assert "revenue per customer" in body["verdict"]


def test_admin_results_page_renders_table_chart_and_verdict(client, admin_user, clear_winner):
    client.force_login(admin_user)
    page = client.get(f"/admin/experiments/experiment/{clear_winner.pk}/results/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="variants"' in html and 'id="comparisons"' in html
    assert "<svg" in html and "<polygon" in html and "<polyline" in html
    assert "<script" not in html.split('id="chart"')[1].split("</div>")[0]
    assert "Sample ratio check passed" in html
    assert "Variant B raised click rate by" in html
    assert client.get(f"/admin/experiments/experiment/{clear_winner.pk}/results/?format=json").json()["arms"]
    assert client.get("/admin/experiments/experiment/holdout/").status_code == 200
    assert client.get("/admin/experiments/experiment/").status_code == 200
    # The design is edited on the campaign's own page (an inline), read-only once started.
    change = client.get(f"/admin/campaigns/campaign/{clear_winner.campaign_id}/change/")
    assert change.status_code == 200
    assert f"/admin/experiments/experiment/{clear_winner.pk}/results/" in change.content.decode()


def test_admin_campaign_page_creates_the_experiment_inline(client, admin_user):
    client.force_login(admin_user)
    draft = scenario.make_campaign(None, variants=2)
    page = client.get(f"/admin/campaigns/campaign/{draft.pk}/change/")
    assert page.status_code == 200
    assert 'name="experiment-TOTAL_FORMS"' in page.content.decode()
    assert Experiment.objects.count() == 0


def test_the_experiment_is_designed_on_the_campaign_page_and_checked(client, admin_user):
    client.force_login(admin_user)
    draft = scenario.make_campaign(None, variants=2)
    url = f"/admin/campaigns/campaign/{draft.pk}/change/"
    data = admin_form_data(client.get(url))
    b = draft.variants.get(name="B")
    data.update(
        {
            "experiment-TOTAL_FORMS": "1",
            "experiment-0-metric": "conversion_rate",
            "experiment-0-method": "bayesian",
            "experiment-0-correction": "holm",
            "experiment-0-alpha": "0.05",
            "experiment-0-planned_sample_size": "5000",
            "experiment-0-mode": "test_then_send",
            "experiment-0-sample_percent": "20",
            "experiment-0-wait_minutes": "120",
            "experiment-0-min_sample_per_arm": "100",
            "experiment-0-decision_rule": "chance_to_win",
            "experiment-0-chance_threshold": "0.95",
            "experiment-0-bandit_floor": "0.05",
            "experiment-0-default_variant": str(b.pk),
            "experiment-0-campaign": str(draft.pk),
        }
    )
    refused = client.post(url, data)
    assert refused.status_code == 200  # the form again, with the reason
    assert "the Bayesian method has none" in refused.content.decode()
    assert not Experiment.objects.exists()
    data["experiment-0-correction"] = "none"
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.context and saved.context.get("errors")
    experiment = Experiment.objects.get(campaign=draft)
    assert (experiment.mode, experiment.method, experiment.default_variant_id) == (
        "test_then_send",
        "bayesian",
        b.pk,
    )
