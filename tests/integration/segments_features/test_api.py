"""The analytics API: summaries, recompute, a customer's features; scopes and bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from segments.features import services
from segments.features.models import AnalyticsRun
from tests.integration.segments_features.conftest import CDNOW_CALIBRATION_END

pytestmark = pytest.mark.django_db


@pytest.fixture
def computed(cdnow_orders):
    services.run_pipeline(as_of=CDNOW_CALIBRATION_END)
    return cdnow_orders


def test_summaries(computed, make_api_client):
    client = make_api_client("segments:read")
    rfm = client.get("/api/v1/analytics/rfm/")
    assert rfm.status_code == 200
    body = rfm.json()
    assert len(body["grid"]) == 25 and body["customers_scored"] == 2357
    assert sum(cell["customers"] for cell in body["grid"]) == 2357
    assert sum(g["customers"] for g in body["groups"]) == 2357
    assert {g["group"] for g in body["groups"]} >= {"Champions", "Lost", "At risk"}
    assert body["run"]["state"] == "succeeded" and body["failure"] is None
    clusters = client.get("/api/v1/analytics/clusters/").json()
    assert clusters["k"] == len(clusters["clusters"]) >= 2
    assert sum(c["customers"] for c in clusters["clusters"]) == 2357
    clv = client.get("/api/v1/analytics/clv/").json()
    assert clv["bgnbd"]["r"] == pytest.approx(0.243, abs=1e-3)
    assert clv["gamma_gamma"]["p"] == pytest.approx(6.25, abs=0.01)
    assert "P(alive)" in clv["explanation"]["p_alive"]
    assert clv["derived"]["mean_dropout_probability"] == pytest.approx(0.793 / (0.793 + 2.426), abs=1e-3)


def test_customer_features(computed, make_api_client):
    client = make_api_client("customers:read")
    response = client.get("/api/v1/customers/cdnow-0001/features/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["customer"] == "cdnow-0001"
    assert body["frequency"] >= 1 and body["rfm"]["group"] and body["rfm"]["description"]
    assert 0 <= body["p_alive"] <= 1 and body["cluster"] is not None and body["cluster_description"]
    assert isinstance(body["predicted_clv"], str)  # money as a decimal string, as elsewhere in the API
    assert client.get("/api/v1/customers/nobody/features/").status_code == 404
    # The customer endpoint itself is unchanged.
    assert client.get("/api/v1/customers/cdnow-0001/").status_code == 200


def test_features_not_computed_yet_is_404_with_a_reason(cdnow_orders, make_api_client):
    response = make_api_client("customers:read").get("/api/v1/customers/cdnow-0001/features/")
    assert response.status_code == 404 and "recompute" in response.json()["detail"]


def test_empty_shop_summaries_render(db, make_api_client):
    client = make_api_client("segments:read")
    for path in ("rfm", "clusters", "clv"):
        response = client.get(f"/api/v1/analytics/{path}/")
        assert response.status_code == 200 and response.json()["run"] is None


def test_scopes(db, make_api_client):
    reader = make_api_client("customers:read")
    assert reader.get("/api/v1/analytics/rfm/").status_code == 403
    segments_reader = make_api_client("segments:read")
    assert segments_reader.post("/api/v1/analytics/recompute/", {}, format="json").status_code == 403
    assert segments_reader.get("/api/v1/customers/x/features/").status_code == 403
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/analytics/clv/").status_code in (401, 403)


def test_recompute_runs_the_pipeline(computed, make_api_client, django_capture_on_commit_callbacks):
    client = make_api_client("segments:write")
    before = AnalyticsRun.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/analytics/recompute/", {"as_of": CDNOW_CALIBRATION_END.isoformat()}, format="json"
        )
    assert response.status_code == 202, response.content
    assert response.json()["task"] == "segments.analytics_pipeline"
    # Tests run Celery eagerly: the chain has run, three more runs, all succeeded.
    runs = AnalyticsRun.objects.order_by("-id")[:3]
    assert AnalyticsRun.objects.count() == before + 3
    assert {r.kind for r in runs} == {"features", "clusters", "clv"}
    assert all(r.state == "succeeded" for r in runs)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"as_of": "not a date"}, "as_of"),
        ({"as_of": "2999-01-01T00:00:00Z"}, "as_of"),
        ([1, 2], "body"),
    ],
)
def test_recompute_bad_input_is_400(db, make_api_client, body, field):
    response = make_api_client("segments:write").post("/api/v1/analytics/recompute/", body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert AnalyticsRun.objects.count() == 0


def test_recompute_unreadable_json_is_400(db, make_api_client):
    response = make_api_client("segments:write").post(
        "/api/v1/analytics/recompute/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400


def test_schema_documents_the_endpoints(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]
    for path in ("rfm", "clusters", "clv", "recompute"):
        assert f"/api/v1/analytics/{path}/" in paths
    assert "/api/v1/customers/{external_id}/features/" in paths


def test_as_of_without_time_zone_is_accepted(db, make_api_client):
    stamp = datetime(2020, 1, 1, tzinfo=UTC).replace(tzinfo=None).isoformat()
    response = make_api_client("segments:write").post(
        "/api/v1/analytics/recompute/", {"as_of": stamp}, format="json"
    )
    assert response.status_code == 202
