import pytest

pytestmark = pytest.mark.django_db


def test_live_schema_documents_the_api(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in [
        "/api/v1/customers/bulk/",
        "/api/v1/customers/{external_id}/erase/",
        "/api/v1/events/batch/",
        "/api/v1/orders/batch/",
        "/api/v1/products/bulk/",
        "/api/v1/loyalty/members/{id}/redeem/",
        "/api/v1/webhooks/endpoints/",
    ]:
        assert path in paths, path
    bulk = paths["/api/v1/customers/bulk/"]["post"]
    assert {"200", "400", "409", "413", "429"} <= set(bulk["responses"])
    assert {p["name"] for p in bulk["parameters"]} >= {"partial", "Idempotency-Key"}
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"]["in"] == "header"
    row = schema["components"]["schemas"]["CustomerRowRequest"]
    assert row["required"] == ["external_id"]
