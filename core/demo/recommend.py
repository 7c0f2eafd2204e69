"""Stage 2: which recommender works on this shop, and every customer's top products.

Evaluation is the `evaluate_recommender` contract on the shop's own purchases: a temporal split
(the last quarter of the purchase lines is the test set, as if the models had been trained a few
days ago), every algorithm tuned on a validation split carved from the training part alone, and
`auto`'s pick flagged. The chosen algorithm is then trained on all purchases and every customer's
top 20 is written to the `Recommendation` table, which campaigns read through
`recommender.selectors.recommendations_for`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import F

from catalog.models import Product
from core.demo.context import DemoContext, rounded
from customers.models import Customer, OrderLine
from recommender.engine.evaluate import evaluate, format_table
from recommender.engine.registry import make_recommender
from recommender.engine.rules import RecommendationRules
from recommender.engine.split import temporal_split
from recommender.engine.types import InteractionLog, ItemCatalog
from recommender.engine.weighting import build_interactions
from recommender.models import ModelVersion, Recommendation, RecommenderConfig

K = 10
TEST_RATIO = 0.25
ITEMS_PER_CUSTOMER = 20
METRIC_KEYS = (f"ndcg@{K}", f"precision@{K}", f"recall@{K}", f"map@{K}", "coverage")


def purchase_lines() -> dict[str, np.ndarray]:
    """Every sale line with its customer, product and time (returns and cancellations excluded)."""
    rows = list(
        OrderLine.objects.filter(quantity__gt=0, product__isnull=False)
        .exclude(order__status="cancelled")
        .order_by("order__placed_at", "order_id", "line_no")
        .values_list("order__customer__external_id", "sku", "quantity", "order__placed_at")
    )
    return {
        "users": np.asarray([r[0] for r in rows], dtype=object),
        "items": np.asarray([r[1] for r in rows], dtype=object),
        "quantities": np.asarray([r[2] for r in rows], dtype=float),
        "timestamps": np.asarray([r[3].timestamp() for r in rows], dtype=float),
    }


def product_catalog() -> ItemCatalog:
    products = list(Product.objects.order_by("sku").values_list("sku", "name", "category_path"))
    return ItemCatalog(
        item_ids=np.asarray([p[0] for p in products], dtype=object),
        names=[p[1] for p in products],
        categories=[p[2] for p in products],
    )


def evaluate_all(
    ctx: DemoContext, lines: dict[str, np.ndarray], catalog: ItemCatalog
) -> list[dict[str, Any]]:
    log = InteractionLog(user_ids=lines["users"], item_ids=lines["items"], timestamps=lines["timestamps"])
    train, test = temporal_split(log, test_ratio=TEST_RATIO)
    results = evaluate(
        train=train,
        test=test,
        algorithm="all",
        k=K,
        seed=ctx.seed,
        num_threads=1,
        tune_params=not ctx.fast,
        catalog=catalog,
        validation_split="temporal",
    )
    ctx.extras["model_table"] = format_table(results, K)
    ctx.timings["recommender_fit_seconds"] = {
        r["algorithm"]: r.get("fit_seconds") for r in results if "skipped" not in r
    }
    ctx.extras["split"] = {"train": len(train), "test": len(test)}
    return results


def choose(results: list[dict[str, Any]]) -> dict[str, Any]:
    """`auto`'s pick (chosen on validation data, never on the test set); without tuning, the best
    on the test set, which is what a marketer reading the table would do."""
    scored = [r for r in results if "skipped" not in r]
    for result in scored:
        if result.get("selected_by_auto"):
            return result
    return scored[0]


def train_and_score(
    ctx: DemoContext, *, algorithm: str, params: dict[str, Any], lines: dict[str, np.ndarray], metrics: dict
) -> dict[str, Any]:
    """Train on every purchase and store each customer's top products.

    Isolated so that it can be replaced by `recommender.services` (train + score_all) when that lands:
    it writes exactly what those services write (config, version, the Recommendation rows).
    """
    interactions = build_interactions(
        user_ids=lines["users"],
        item_ids=lines["items"],
        quantities=lines["quantities"],
        timestamps=lines["timestamps"],
        item_universe=product_catalog().item_ids,
    )
    model = make_recommender(algorithm, params, num_threads=1, seed=ctx.seed)
    model.fit(interactions, catalog=product_catalog())
    config = RecommenderConfig.objects.create(
        name="default",
        algorithm=algorithm,
        params=params,
        items_per_customer=ITEMS_PER_CUSTOMER,
        is_default=True,
    )
    version = ModelVersion.objects.create(
        config=config,
        algorithm=algorithm,
        params=params,
        status=ModelVersion.Status.READY,
        metrics=metrics,
        n_customers=int(interactions.n_users),
        n_products=int(interactions.n_items),
        n_interactions=int(interactions.matrix.nnz),
    )
    customers = dict(Customer.objects.values_list("external_id", "pk"))
    products = dict(Product.objects.values_list("sku", "pk"))
    names = dict(Product.objects.values_list("sku", "name"))
    users = np.asarray(sorted(customers), dtype=object)
    rows = interactions.user_rows(users)
    rules = RecommendationRules(exclude_seen=True)
    # Customers the model knows stream by chunk; the others (only cancellations) get the cold-start list.
    batches = list(model.iter_batches(rows[rows >= 0], n=ITEMS_PER_CUSTOMER, rules=rules))
    if (rows < 0).any():
        batches.append(model.recommend(users[rows < 0], n=ITEMS_PER_CUSTOMER, rules=rules))
    written = 0
    with transaction.atomic():
        for batch in ctx.progress(batches, total=len(batches), desc="storing recommendations"):
            objects = []
            for user, recs in zip(batch.user_ids.tolist(), batch.to_lists(), strict=True):
                for rank, rec in enumerate(recs, start=1):
                    because = [names.get(item, str(item)) for item in rec.explanation.items]
                    objects.append(
                        Recommendation(
                            model_version=version,
                            customer_id=customers[user],
                            rank=rank,
                            product_id=products[rec.item],
                            score=float(rec.score),
                            explanation={"text": rec.explanation.describe(names), "because": because},
                        )
                    )
            Recommendation.objects.bulk_create(objects, batch_size=2000)
            written += len(objects)
        RecommenderConfig.objects.filter(pk=config.pk).update(active_version=version)
        ModelVersion.objects.filter(pk=version.pk).update(promoted_at=F("created_at"))
    return {
        "algorithm": algorithm,
        "params": params,
        "customers_scored": len(users),
        "recommendations": written,
        "items_per_customer": ITEMS_PER_CUSTOMER,
    }


def run(ctx: DemoContext) -> None:
    lines = purchase_lines()
    catalog = product_catalog()
    results = evaluate_all(ctx, lines, catalog)
    ctx.say(ctx.extras["model_table"])
    chosen = choose(results)
    comparison = [
        {
            "algorithm": r["algorithm"],
            **({"skipped": r["skipped"]} if "skipped" in r else {k: rounded(r[k]) for k in METRIC_KEYS}),
            **(
                {"selected_by_auto": bool(r.get("selected_by_auto")), "chosen": r is chosen}
                if "skipped" not in r
                else {}
            ),
        }
        for r in results
    ]
    metrics = {k: rounded(chosen[k]) for k in METRIC_KEYS}
    scored = train_and_score(
        ctx, algorithm=chosen["algorithm"], params=chosen["params"], lines=lines, metrics=metrics
    )
    ctx.report["recommender"] = {
        "split": {"method": "temporal", "test_ratio": TEST_RATIO, **ctx.extras["split"]},
        "k": K,
        "tuned": not ctx.fast,
        "comparison": comparison,
        "chosen": {**scored, "test_metrics": metrics},
    }
    ctx.say(
        f"  chosen: {chosen['algorithm']} (ndcg@{K} {chosen[f'ndcg@{K}']:.4f}); "
        f"{scored['recommendations']:,} recommendations for {scored['customers_scored']} customers"
    )
