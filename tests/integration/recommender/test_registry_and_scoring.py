"""Training, the model registry, batch scoring and incremental refresh on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from access.models import AuditEntry
from catalog.models import Product
from customers.models import Customer, Event, Order, OrderLine
from customers.signals import events_ingested
from recommender.explanations import stored_explanation
from recommender.models import (
    ModelVersion,
    Recommendation,
    RecommenderConfig,
    ScoringChunk,
    ScoringRun,
    TouchedCustomer,
)
from recommender.services import artifacts, refresh, registry, scoring

pytestmark = pytest.mark.django_db


def _trained(config, **kwargs) -> ModelVersion:
    version = registry.train(config_id=config.pk, **kwargs)
    assert version.status == ModelVersion.Status.READY, version.error
    return version


def test_train_records_metrics_sizes_and_artifact(shop, config, media):
    version = _trained(config)
    assert version.n_customers == 60
    assert version.n_products == 30  # every catalog product is a column, bought or not
    assert version.n_interactions >= 180
    assert version.fit_seconds is not None and version.trained_at is not None
    for key in ("ndcg@10", "precision@10", "recall@10", "coverage", "validation_customers"):
        assert key in version.metrics
    # Customers buy inside their category: an item model finds the held-out products.
    assert version.metrics["recall@10"] > 0.5
    assert (media / version.artifact.name).exists()
    assert artifacts.load_model(version=version).interactions_.n_users == 60
    config.refresh_from_db()
    assert config.active_version_id is None  # training alone never changes what is served
    assert AuditEntry.objects.filter(action="recommender.trained", target_id=str(version.pk)).exists()


def test_artifact_of_another_version_is_refused(shop, config):
    first = _trained(config)
    second = _trained(config)
    artifacts.forget(second.pk)
    ModelVersion.objects.filter(pk=second.pk).update(artifact=first.artifact.name)
    second.refresh_from_db()
    with pytest.raises(artifacts.ArtifactError, match="another version"):
        artifacts.load_model(version=second)


@pytest.mark.parametrize("customers", [0, 1])
def test_empty_or_single_customer_training_fails_clearly(db, media, config, customers):
    from tests.integration.recommender.shop import build_shop

    build_shop(customers=customers)
    version = registry.train(config_id=config.pk)
    assert version.status == ModelVersion.Status.FAILED
    assert ("empty" if customers == 0 else "single customer") in version.error


def test_failed_training_keeps_the_active_version(shop, config):
    good = _trained(config)
    registry.promote(version_id=good.pk)
    RecommenderConfig.objects.filter(pk=config.pk).update(algorithm="no_such_algorithm")
    bad = registry.train(config_id=config.pk)
    assert bad.status == ModelVersion.Status.FAILED
    assert "unknown algorithm" in bad.error
    config.refresh_from_db()
    assert config.active_version_id == good.pk
    with pytest.raises(registry.RegistryError):
        registry.promote(version_id=bad.pk)


def test_promote_scores_then_rollback_returns_to_previous(shop, config, django_capture_on_commit_callbacks):
    first = _trained(config)
    with django_capture_on_commit_callbacks(execute=True):
        registry.promote(version_id=first.pk)  # no stored rows yet: scoring is enqueued (eager in tests)
    first.refresh_from_db()
    assert first.scored_at is not None
    assert Recommendation.objects.filter(model_version=first).count() == 60 * 5
    RecommenderConfig.objects.filter(pk=config.pk).update(
        algorithm="als", params={"factors": 8, "iterations": 5}
    )
    second = _trained(config)
    run = scoring.score_all(version_id=second.pk, promote_when_done=True)
    assert run.status == ScoringRun.Status.DONE
    config.refresh_from_db()
    assert config.active_version_id == second.pk
    second.refresh_from_db()
    assert second.previous_version_id == first.pk
    rolled = registry.rollback(config_id=config.pk)
    assert rolled.pk == first.pk
    config.refresh_from_db()
    assert config.active_version_id == first.pk
    assert ModelVersion.objects.get(pk=second.pk).status == ModelVersion.Status.RETIRED
    actions = list(
        AuditEntry.objects.filter(action__startswith="recommender.").values_list("action", flat=True)
    )
    assert "recommender.promoted" in actions and "recommender.rolled_back" in actions
    # Nothing older than the current one's predecessor: rollback again fails clearly.
    with pytest.raises(registry.RegistryError, match="no previous model"):
        registry.rollback(config_id=config.pk)


def test_score_all_rows_explanations_and_rules(shop, config):
    version = _trained(config)
    out_of_stock = shop["by_category"][0][0]
    inactive = shop["by_category"][1][0]
    type(out_of_stock).objects.filter(pk=out_of_stock.pk).update(stock=0)
    type(inactive).objects.filter(pk=inactive.pk).update(active=False)
    run = scoring.score_all(version_id=version.pk, chunk_customers=25)
    assert run.status == ScoringRun.Status.DONE and run.chunks_total == 3
    stored = list(Recommendation.objects.filter(model_version=version).select_related("because_product"))
    rows = [
        {
            "customer_id": r.customer_id,
            "rank": r.rank,
            "product_id": r.product_id,
            "explanation": stored_explanation(r),
            "raw": (r.reason, r.because_product_id, r.explanation),
        }
        for r in stored
    ]
    assert len(rows) == run.rows_written == 300
    products = {r["product_id"] for r in rows}
    assert out_of_stock.pk not in products and inactive.pk not in products
    bought = set(OrderLine.objects.filter(quantity__gt=0).values_list("order__customer_id", "product_id"))
    assert not any((r["customer_id"], r["product_id"]) in bought for r in rows)
    ranks = {}
    for r in rows:
        ranks.setdefault(r["customer_id"], []).append(r["rank"])
    assert all(sorted(v) == [1, 2, 3, 4, 5] for v in ranks.values())
    explained = [r["explanation"] for r in rows if r["explanation"]["reason"] == "because_you_bought"]
    assert len(explained) > 200
    assert explained[0]["text"].startswith("Because you bought ") and explained[0]["because"][0].startswith(
        "SKU-"
    )
    # Stored compactly: a reason code and the because-product's id, no JSON body.
    assert all(r["raw"][2] is None for r in rows)
    because_you_bought = [r for r in rows if r["explanation"]["reason"] == "because_you_bought"]
    product = Product.objects.get(pk=because_you_bought[0]["raw"][1])
    assert because_you_bought[0]["explanation"] == {
        "reason": "because_you_bought",
        "text": f"Because you bought {product.name}",
        "because": [product.sku],
    }
    others = [r for r in rows if r["explanation"]["reason"] != "because_you_bought"]
    assert all(r["raw"][1] is None for r in others)


def test_score_all_is_safe_to_run_twice_and_readers_see_only_the_active_version(shop, config):
    version = _trained(config)
    run = scoring.score_all(version_id=version.pk)
    again = scoring.score_all(version_id=version.pk)  # a second full run replaces, never doubles
    assert again.pk != run.pk
    assert Recommendation.objects.filter(model_version=version).count() == 300
    # A chunk task delivered twice does nothing the second time.
    chunk = ScoringChunk.objects.filter(run=again).first()
    assert scoring.score_chunk(chunk_id=chunk.pk)["skipped"] is True
    from recommender.selectors import recommendations_for

    customer = shop["customers"][0]
    cards = recommendations_for(customer_ids=[customer.pk])[customer.pk]
    assert all(card["explanation"] == "Popular right now" for card in cards)  # not active: not visible
    registry.promote(version_id=version.pk)
    cards = recommendations_for(customer_ids=[customer.pk])[customer.pk]
    assert cards and cards[0]["explanation"].startswith("Because you bought")


def test_expired_lease_is_reclaimed(shop, config):
    version = _trained(config)
    run = scoring.plan_scoring(version_id=version.pk, chunk_customers=30)
    chunk = run.chunks.first()
    ScoringChunk.objects.filter(pk=chunk.pk).update(
        state=ScoringChunk.State.RUNNING, lease_until=timezone.now() - timedelta(minutes=1), attempts=1
    )
    assert chunk.pk in scoring.reclaim_expired()
    assert scoring.score_chunk(chunk_id=chunk.pk)["rows"] == 150


def test_copy_path_is_used_on_postgresql(shop, config, django_assert_max_num_queries):
    from django.test.utils import CaptureQueriesContext

    assert connection.vendor == "postgresql"
    version = _trained(config)
    run = scoring.plan_scoring(version_id=version.pk, chunk_customers=60)
    chunk = run.chunks.get()
    # A fixed number of statements for 300 rows, and none of them an INSERT: the rows went in
    # by COPY (which bypasses Django's query log).
    with django_assert_max_num_queries(20), CaptureQueriesContext(connection) as queries:
        assert scoring.score_chunk(chunk_id=chunk.pk)["rows"] == 300
    assert not [
        q for q in queries.captured_queries if "INSERT" in q["sql"].upper() and "recommendation" in q["sql"]
    ]
    assert Recommendation.objects.filter(model_version=version).count() == 300


def test_sqlite_path_writes_with_bulk_create(tmp_path):
    """The embedded default (SQLite) has no COPY: the same service writes with bulk_create."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'reco.sqlite3'}",
            "MEDIA_ROOT": str(tmp_path / "media"),
            "CELERY_TASK_ALWAYS_EAGER": "1",
        }
    )
    script = root / "tests" / "integration" / "recommender" / "sqlite_scoring_check.py"
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "vendor=sqlite rows=300 explained=True" in done.stdout


def test_incremental_refresh_after_new_events(shop, config):
    RecommenderConfig.objects.filter(pk=config.pk).update(
        algorithm="als", params={"factors": 8, "iterations": 8}
    )
    version = _trained(config)
    scoring.score_all(version_id=version.pk, promote_when_done=True)
    # A brand-new customer shows interest in garden tools.
    newcomer = Customer.objects.create(external_id="newcomer", email="n@example.com")
    garden = shop["by_category"][1]
    events = Event.objects.bulk_create(
        [
            Event(
                customer=newcomer,
                type="add_to_cart",
                product=p,
                occurred_at=timezone.now(),
                idempotency_key=f"new-{p.pk}",
            )
            for p in garden[:3]
        ]
    )
    events_ingested.send(sender=Event, event_ids=[e.pk for e in events])
    assert TouchedCustomer.objects.filter(customer=newcomer).exists()
    result = refresh.refresh_touched()
    assert result["customers"] == 1 and result["rows"]["default"] == 5
    assert not TouchedCustomer.objects.exists()
    recs = list(
        Recommendation.objects.filter(model_version=version, customer=newcomer).values_list(
            "product_id", flat=True
        )
    )
    assert len(recs) == 5
    assert not set(recs) & {p.pk for p in garden[:3]}  # already in the cart: excluded
    garden_ids = {p.pk for p in garden}
    assert len(set(recs) & garden_ids) >= 3  # the folded-in taste is for garden tools


def test_orders_signal_touches_customers(shop, config):
    from customers.signals import orders_ingested

    order = Order.objects.first()
    orders_ingested.send(sender=Order, order_ids=[order.pk])
    assert TouchedCustomer.objects.filter(customer_id=order.customer_id).exists()


def test_returns_remove_credit(shop):
    from recommender.services import data

    customer = shop["customers"][0]
    line = OrderLine.objects.filter(order__customer=customer).first()
    returned = Order.objects.create(external_id="ret-1", customer=customer, placed_at=timezone.now())
    OrderLine.objects.create(
        order=returned,
        line_no=1,
        product=line.product,
        sku=line.sku,
        kind="return",
        quantity=-line.quantity,
        unit_price=line.unit_price,
    )
    raw = data.read_raw_interactions(customer_ids=[customer.pk])
    interactions = data.weighted_interactions(raw)
    assert line.product_id not in set(interactions.item_ids[interactions.matrix.indices].tolist())


@pytest.mark.parametrize("config_name", ["default"])
def test_configs_are_isolated(shop, config, config_name):
    other = RecommenderConfig.objects.create(name="other", algorithm="popularity")
    version = _trained(other)
    registry.promote(version_id=version.pk)
    config.refresh_from_db()
    assert config.active_version_id is None


def test_deleting_a_customer_or_product_still_removes_their_rows(shop, config):
    """The rows have no database foreign keys (bulk-write speed): the ORM's cascade must hold."""
    version = _trained(config)
    scoring.score_all(version_id=version.pk)
    customer = shop["customers"][0]
    product_id = Recommendation.objects.filter(customer=customer).values_list("product_id", flat=True).first()
    Customer.all_objects.filter(pk=customer.pk).delete()
    assert not Recommendation.objects.filter(customer_id=customer.pk).exists()
    type(shop["products"][0]).objects.filter(pk=product_id).delete()
    assert not Recommendation.objects.filter(product_id=product_id).exists()
    assert Recommendation.objects.count() > 0
