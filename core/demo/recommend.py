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

from catalog.models import Product
from core.demo.context import DemoContext, rounded
from customers.models import OrderLine
from recommender.engine.evaluate import evaluate, format_table
from recommender.engine.split import temporal_split
from recommender.engine.types import InteractionLog, ItemCatalog
from recommender.models import ModelVersion, Recommendation, RecommenderConfig
from recommender.services import registry, scoring

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


def train_and_score(ctx: DemoContext, *, algorithm: str, params: dict[str, Any]) -> dict[str, Any]:
    """Train the chosen algorithm on every purchase and store each customer's top products.

    The recommender's own services, as the nightly task and the admin's "train" button run them:
    a `default` config, `train` (which also measures validation metrics on the training data),
    then `score_all`, which writes the `Recommendation` rows and promotes the version.
    """
    config = RecommenderConfig.objects.create(
        name="default",
        algorithm=algorithm,
        params=params,
        items_per_customer=ITEMS_PER_CUSTOMER,
        exclude_purchased=True,
        is_default=True,
    )
    version = registry.train(config_id=config.pk, validate=True, num_threads=1)
    if version.status != ModelVersion.Status.READY:
        raise RuntimeError(f"training the {algorithm} model failed: {version.error}")
    run = scoring.score_all(version_id=version.pk, promote_when_done=True)
    if run.status != run.Status.DONE:
        raise RuntimeError(f"scoring failed: {run.error}")
    config.refresh_from_db()
    stored = Recommendation.objects.filter(model_version=config.active_version_id)
    return {
        "algorithm": algorithm,
        "params": params,
        "customers_scored": stored.values("customer_id").distinct().count(),
        "recommendations": stored.count(),
        # How personal the lists are: a model that fell back to popularity shows everyone the same few.
        "distinct_first_products": stored.filter(rank=1).values("product_id").distinct().count(),
        "distinct_top4_products": stored.filter(rank__lte=4).values("product_id").distinct().count(),
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
    scored = train_and_score(ctx, algorithm=chosen["algorithm"], params=chosen["params"])
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
