"""The training fault tests' shared scenario: a model serving, then a slow run to kill."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recommender.models import ModelVersion, RecommenderConfig
from tests.integration.recommender.shop import build_shop

SAMPLE = ["c0000", "c0001", "c0150", "c0299"]
# ALS with this many sweeps takes seconds on the 300-customer shop (validation fit + final fit):
# long enough to be killed in the middle, short enough to be retried within the test.
SLOW_ALS = {"factors": 64, "iterations": 600}


@dataclass
class Serving:
    config: RecommenderConfig
    v1: ModelVersion
    api: Any

    def served(self) -> dict:
        """What the API answers for the sample customers now."""
        return {c: self.api.get(f"/api/v1/customers/{c}/recommendations/?n=5").json() for c in SAMPLE}


def model_serving(make_api_client) -> Serving:
    """A shop whose item-kNN model v1 is trained (in this process), scored and active."""
    from recommender.services import registry, scoring

    build_shop(customers=300, products_per_category=20)
    config = RecommenderConfig.objects.create(
        name="default", algorithm="item_knn", params={"neighbours": 20}, is_default=True, items_per_customer=5
    )
    v1 = registry.train(config_id=config.pk, num_threads=1)
    scoring.score_all(version_id=v1.pk, promote_when_done=True)
    return Serving(config=config, v1=v1, api=make_api_client("recommendations:read"))


def start_slow_training(config: RecommenderConfig) -> ModelVersion:
    """Switch the config to a slow ALS and hand a new training run to the worker."""
    from recommender import tasks
    from recommender.services import registry

    RecommenderConfig.objects.filter(pk=config.pk).update(algorithm="als", params=SLOW_ALS)
    config.refresh_from_db()
    v2 = registry.start_training(config=config)
    tasks.train.delay(config.pk, v2.pk)
    return v2
