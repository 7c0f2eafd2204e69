"""The recommendation API: stored lists, real-time fallback, cold start, similar products, registry."""

from __future__ import annotations

import pytest
from django.utils import timezone

from access.models import AuditEntry
from customers.models import Customer, Event
from recommender.models import ModelVersion, RecommenderConfig
from recommender.services import registry, scoring
from tests.integration.recommender.shop import build_shop

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(settings, tmp_path):
    """A shop with a trained, scored and promoted item-kNN model."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    shop = build_shop()
    config = RecommenderConfig.objects.create(
        name="default", algorithm="item_knn", params={"neighbours": 20}, is_default=True, items_per_customer=8
    )
    version = registry.train(config_id=config.pk)
    scoring.score_all(version_id=version.pk, promote_when_done=True)
    return {**shop, "config": config, "version": version}


def test_stored_recommendations(api, served):
    customer = served["customers"][0]
    response = api.get(f"/api/v1/customers/{customer.external_id}/recommendations?n=4&context=email")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"] == "stored" and body["model_version"] == served["version"].pk
    assert body["context"] == "email"
    assert len(body["items"]) == 4
    assert body["items"][0]["explanation"].startswith("Because you bought")
    home = {p.sku for p in served["by_category"][0]}
    assert {item["sku"] for item in body["items"]} <= home  # customer 0 buys mugs


def test_category_filter(api, served):
    customer = served["customers"][0]
    response = api.get(
        f"/api/v1/customers/{customer.external_id}/recommendations/", {"n": 3, "category": "Garden"}
    )
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 3 and all(item["category"].startswith("Garden") for item in items)


def test_realtime_for_customer_without_stored_rows(api, served):
    newcomer = Customer.objects.create(external_id="new-1", email="new-1@example.com")
    puzzles = served["by_category"][2]
    Event.objects.bulk_create(
        [
            Event(
                customer=newcomer,
                type="view",
                product=p,
                occurred_at=timezone.now(),
                idempotency_key=f"rt-{p.pk}",
            )
            for p in puzzles[:3]
        ]
    )
    response = api.get("/api/v1/customers/new-1/recommendations?n=5")
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "realtime"
    skus = [item["sku"] for item in body["items"]]
    assert len(skus) == 5 and not {p.sku for p in puzzles[:3]} & set(skus)
    assert sum(sku.startswith("SKU-2-") for sku in skus) >= 3
    assert any(item["explanation"].startswith("Because you bought") for item in body["items"])


def test_known_customer_without_any_history_is_scored_in_real_time(api, served):
    Customer.objects.create(external_id="quiet-1", email="quiet-1@example.com")
    response = api.get("/api/v1/customers/quiet-1/recommendations?n=4")
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "realtime" and len(body["items"]) == 4
    assert body["items"][0]["explanation"] == "Popular right now"


def test_unknown_customer_gets_the_cold_start_list(api, served):
    response = api.get("/api/v1/customers/nobody-knows-me/recommendations?n=6")
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "cold_start" and len(body["items"]) == 6
    assert body["items"][0]["explanation"] == "Popular right now"


def test_without_a_model_the_popular_list(api, db):
    build_shop(customers=5)
    response = api.get("/api/v1/customers/c0001/recommendations?n=3")
    assert response.status_code == 200
    assert response.json()["source"] == "popular" and len(response.json()["items"]) == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [("n=0", "n"), ("n=abc", "n"), ("n=101", "n"), ("context=fridge", "context"), ("config=nope", "config")],
)
def test_bad_parameters_are_field_errors(api, served, query, field):
    response = api.get(f"/api/v1/customers/c0001/recommendations?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_similar_products(api, served):
    mug = served["by_category"][0][0]
    response = api.get(f"/api/v1/products/{mug.sku}/similar?n=4")
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "model" and len(body["items"]) == 4
    assert mug.sku not in {item["sku"] for item in body["items"]}
    assert all(item["sku"].startswith("SKU-0-") for item in body["items"])
    assert api.get("/api/v1/products/NO-SUCH-SKU/similar").status_code == 404
    assert api.get(f"/api/v1/products/{mug.sku}/similar?n=-1").status_code == 400


def test_models_list_promote_rollback_and_train(api, served, django_capture_on_commit_callbacks):
    config, first = served["config"], served["version"]
    response = api.get("/api/v1/recommender/models/")
    assert response.status_code == 200
    listed = response.json()
    assert listed[0]["id"] == first.pk and listed[0]["is_active"] is True
    assert "ndcg@10" in listed[0]["metrics"]
    assert api.get("/api/v1/recommender/models/?status=bogus").status_code == 400

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/recommender/configs/{config.pk}/train/")
    assert response.status_code == 202, response.content
    second_id = response.json()["version"]["id"]
    second = ModelVersion.objects.get(pk=second_id)
    assert second.status == ModelVersion.Status.READY  # eager worker in tests: trained, scored, promoted
    config.refresh_from_db()
    assert config.active_version_id == second.pk

    response = api.post(f"/api/v1/recommender/configs/{config.pk}/rollback/")
    assert response.status_code == 200 and response.json()["id"] == first.pk
    response = api.post(f"/api/v1/recommender/models/{second.pk}/promote/")
    assert response.status_code == 200 and response.json()["is_active"] is True
    assert AuditEntry.objects.filter(action="recommender.promoted", api_key_name="test-integration").exists()

    failed = ModelVersion.objects.create(config=config, algorithm="als", status=ModelVersion.Status.FAILED)
    assert api.post(f"/api/v1/recommender/models/{failed.pk}/promote/").status_code == 409
    assert api.post("/api/v1/recommender/models/999999/promote/").status_code == 404
    assert api.post("/api/v1/recommender/configs/999999/rollback/").status_code == 404


def test_scopes(make_api_client, served):
    reader = make_api_client("recommendations:read", name="reader")
    assert reader.get("/api/v1/customers/c0001/recommendations").status_code == 200
    assert reader.post(f"/api/v1/recommender/models/{served['version'].pk}/promote/").status_code == 403
    other = make_api_client("customers:read", name="other")
    assert other.get("/api/v1/customers/c0001/recommendations").status_code == 403
    assert other.get("/api/v1/recommender/models/").status_code == 403


def test_paths_are_in_the_openapi_schema(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    for fragment in (
        "/api/v1/customers/{external_id}/recommendations",
        "/api/v1/products/{sku}/similar",
        "/api/v1/recommender/models/",
        "/api/v1/recommender/configs/{id}/train/",
    ):
        assert fragment in text


def _items(response) -> list[tuple]:
    return [(i["sku"], i["score"], i["explanation"], tuple(i["because"])) for i in response.json()["items"]]


@pytest.mark.parametrize(
    "query", [{"n": 5}, {"n": 3, "category": "Home"}, {"n": 3, "category": "Garden > Tools"}]
)
def test_stored_path_is_one_query_and_matches_the_campaign_selector(
    api, served, query, django_assert_num_queries
):
    """The API's one-statement read gives exactly what campaigns get from the selector."""
    from catalog.models import Product
    from recommender.selectors import RecommendationRules, recommendations_for

    customer = served["customers"][0]
    stored = list(
        served["version"]
        .recommendations.filter(customer=customer)
        .order_by("rank")
        .values_list("product_id", flat=True)
    )
    Product.objects.filter(pk=stored[0]).update(stock=0)  # today's rules apply to stored rows
    Product.objects.filter(pk=stored[1]).update(active=False)
    path = f"/api/v1/customers/{customer.external_id}/recommendations"
    api.get(path)  # the key's first use is verified in the database and remembered
    category = query.get("category")
    expected = recommendations_for(
        customer_ids=[customer.pk],
        rules=RecommendationRules(n=query["n"], categories=(category,) if category else ()),
        config=RecommenderConfig.objects.get(pk=served["config"].pk),  # promoted since the fixture
    )[customer.pk]
    if category is None:
        with django_assert_num_queries(1):
            response = api.get(path, query)
    else:
        response = api.get(path, query)
    assert response.status_code == 200 and response.json()["source"] == "stored"
    got = _items(response)
    assert got == [(c["sku"], c["score"], c["explanation"], tuple(c["because"])) for c in expected]
    skus = {sku for sku, *_ in got}
    assert not skus & set(Product.objects.filter(pk__in=stored[:2]).values_list("sku", flat=True))


def test_stored_path_skips_deleted_customers_and_names_configs(api, served):
    customer = served["customers"][1]
    path = f"/api/v1/customers/{customer.external_id}/recommendations"
    assert api.get(path, {"config": "default"}).json()["source"] == "stored"
    missing = api.get(path, {"config": "nope"})
    assert missing.status_code == 400 and "config" in missing.json()
    Customer.all_objects.filter(pk=customer.pk).update(deleted_at=timezone.now())
    assert api.get(path).json()["source"] == "cold_start"  # a soft-deleted customer is unknown


def test_promotion_is_seen_by_the_next_request(api, served):
    """The config is cached per process only as of the row the request just read."""
    newcomer = Customer.objects.create(external_id="new-2", email="new-2@example.com")
    path = f"/api/v1/customers/{newcomer.external_id}/recommendations"
    assert api.get(path).json()["model_version"] == served["version"].pk
    second = registry.train(config_id=served["config"].pk)
    registry.promote(version_id=second.pk, score_if_needed=False)
    body = api.get(path).json()
    assert body["model_version"] == second.pk and body["source"] == "realtime"


def test_similar_products_in_two_queries_with_config_errors_first(api, served, django_assert_num_queries):
    mug = served["by_category"][0][0]
    path = f"/api/v1/products/{mug.sku}/similar"
    assert api.get(path).status_code == 200  # key verified and remembered, config cached
    with django_assert_num_queries(2):  # product + config, then the similar products' rows
        body = api.get(path, {"n": 3}).json()
    assert body["source"] == "model" and body["model_version"] == served["version"].pk
    assert api.get(path, {"config": "default"}).status_code == 200
    bad = api.get(path, {"config": "nope"})
    assert bad.status_code == 400 and "config" in bad.json()
    bad_and_missing = api.get("/api/v1/products/NO-SUCH-SKU/similar", {"config": "nope"})
    assert bad_and_missing.status_code == 400
    assert api.get("/api/v1/products/NO-SUCH-SKU/similar", {"config": "default"}).status_code == 404
    RecommenderConfig.objects.filter(pk=served["config"].pk).update(is_default=False)
    assert api.get(path).json()["source"] == "category"  # no default config: same-category best sellers
