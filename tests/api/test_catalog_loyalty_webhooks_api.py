import pytest

from loyalty.models import PointsTransaction
from tests.factories.catalog import ProductFactory
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


def test_products_filters_and_validation(api):
    assert (
        api.post(
            "/api/v1/products/",
            {"sku": "M1", "name": "Mug", "price": "4.00", "category": "Home > Mugs", "stock": 0},
        ).status_code
        == 201
    )
    ProductFactory(sku="T1", price="20.00", brand="Teaco", category_path="Home > Tea", stock=None)
    skus = lambda r: sorted(p["sku"] for p in r.json()["results"])  # noqa: E731
    assert skus(api.get("/api/v1/products/?category=Home")) == ["M1", "T1"]
    assert skus(api.get("/api/v1/products/?in_stock=true")) == ["T1"]
    assert skus(api.get("/api/v1/products/?price_max=10")) == ["M1"]
    assert skus(api.get("/api/v1/products/?brand=teaco")) == ["T1"]
    assert api.post("/api/v1/products/", {"sku": "N", "name": "x", "price": "-1"}).json()["price"]
    assert api.patch("/api/v1/products/M1/", {"price": "5.00"}).json()["price"] == "5.00"
    assert api.delete("/api/v1/products/M1/").status_code == 204
    assert api.get("/api/v1/products/M1/").json()["active"] is False
    bulk = api.post(
        "/api/v1/products/bulk/", {"rows": [{"sku": "B1", "name": "B", "price": 1}, {"sku": "B2"}]}
    )
    assert bulk.status_code == 400 and {e["field"] for e in bulk.json()["errors"]} == {"name", "price"}


def test_loyalty_flow(api):
    CustomerFactory(external_id="l1")
    program = api.post(
        "/api/v1/loyalty/programs/",
        {"name": "Club", "slug": "club", "currency": "GBP", "event_points": {"review": 5}},
    )
    assert program.status_code == 201, program.json()
    assert (
        api.post("/api/v1/loyalty/programs/", {"name": "X", "slug": "x", "currency": "XYZ"}).status_code
        == 400
    )
    assert (
        api.post(
            "/api/v1/loyalty/programs/", {"name": "X", "slug": "y", "event_points": {"a": -1}}
        ).status_code
        == 400
    )
    pid = program.json()["id"]
    assert (
        api.post("/api/v1/loyalty/tiers/", {"program": pid, "name": "Base", "threshold": 0}).status_code
        == 201
    )
    assert (
        api.post("/api/v1/loyalty/tiers/", {"program": pid, "name": "Base", "threshold": 10}).status_code
        == 400
    )
    member = api.post("/api/v1/loyalty/members/", {"customer": "l1", "program": "club"}).json()
    assert member["tier"] == "Base"
    mid = member["id"]
    award = api.post(f"/api/v1/loyalty/members/{mid}/award/", {"points": 150, "idempotency_key": "a1"})
    assert award.status_code == 200 and award.json()["balance_after"] == 150
    assert (
        api.post(f"/api/v1/loyalty/members/{mid}/award/", {"points": 99, "idempotency_key": "a1"}).status_code
        == 409
    )
    reward = api.post("/api/v1/loyalty/rewards/", {"program": pid, "name": "Tote", "cost_points": 100}).json()
    redeemed = api.post(
        f"/api/v1/loyalty/rewards/{reward['id']}/redeem/", {"customer": "l1", "idempotency_key": "r1"}
    )
    assert redeemed.status_code == 200 and redeemed.json()["transaction"]["points"] == -100
    again = api.post(
        f"/api/v1/loyalty/members/{mid}/redeem/", {"reward": reward["id"], "idempotency_key": "r2"}
    )
    assert again.status_code == 400 and "Balance is 50" in again.json()["non_field_errors"][0]
    assert (
        api.post(
            f"/api/v1/loyalty/members/{mid}/adjust/", {"points": 0, "idempotency_key": "z", "reason": "r"}
        ).status_code
        == 400
    )
    ledger = api.get(f"/api/v1/loyalty/transactions/?membership={mid}").json()["results"]
    assert [t["kind"] for t in ledger] == ["redeem", "earn"]
    tx = ledger[0]["id"]
    assert api.delete(f"/api/v1/loyalty/transactions/{tx}/").status_code == 405
    assert api.patch(f"/api/v1/loyalty/transactions/{tx}/", {"points": 1}).status_code == 405
    assert PointsTransaction.objects.count() == 2


def test_webhook_endpoint_crud_shows_secret_once(api):
    created = api.post(
        "/api/v1/webhooks/endpoints/",
        {"name": "crm", "url": "https://crm.example.com/hook", "topics": ["customer.created"]},
    )
    assert created.status_code == 201 and len(created.json()["secret"]) > 20
    eid = created.json()["id"]
    assert "secret" not in api.get(f"/api/v1/webhooks/endpoints/{eid}/").json()
    assert (
        api.post(
            "/api/v1/webhooks/endpoints/", {"name": "x", "url": "https://x.example.com", "topics": ["nope"]}
        ).status_code
        == 400
    )
    assert (
        api.post(
            "/api/v1/webhooks/endpoints/", {"name": "x", "url": "https://x.example.com", "secret": "mine"}
        ).status_code
        == 400
    )
