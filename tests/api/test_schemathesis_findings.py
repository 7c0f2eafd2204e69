"""Regression tests for what the full schemathesis run found (docs/reliability.md, failures table)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/experiments/holdout/?days=", "days"),
        ("/api/v1/customers/c1/recommendations/?context=", "context"),
        ("/api/v1/customers/c1/recommendations/?n=", "n"),
        ("/api/v1/customers/c1/recommendations/?config=", "config"),
    ],
)
def test_an_empty_query_value_is_a_field_error_not_the_default(api, url, field):
    response = api.get(url)
    assert response.status_code == 400, response.content
    assert response.json()[field] == ["May not be empty."]


def test_query_values_still_work(api):
    assert api.get("/api/v1/experiments/holdout/?days=7").json()["days"] == 7
    assert api.get("/api/v1/customers/c1/recommendations/?n=3&context=email").status_code == 200


def test_recompute_refuses_a_json_null_body_and_takes_no_body(api, django_capture_on_commit_callbacks):
    response = api.generic("POST", "/api/v1/analytics/recompute/", "null", content_type="application/json")
    assert response.status_code == 400 and "body" in response.json()
    with django_capture_on_commit_callbacks(execute=False):
        assert api.post("/api/v1/analytics/recompute/").status_code == 202


@pytest.mark.parametrize("model_id", ["null,null", "abc", "1.5", "999999"])
def test_a_model_version_id_that_is_not_one_is_a_json_404(api, model_id):
    response = api.get(f"/api/v1/recommender/models/{model_id}/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
