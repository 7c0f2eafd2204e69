"""Algorithm names, default parameters and tuning grids.

The names are part of the public CLI contract (``--algorithm NAME``). Grids are sized so
that tuning every algorithm on ~100k interactions finishes in a few minutes on 2 cores.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from recommender.engine.base import BaseRecommender
from recommender.engine.content import ContentRecommender
from recommender.engine.ease import EASERecommender
from recommender.engine.errors import UnknownAlgorithmError
from recommender.engine.factors import ALSRecommender, BPRRecommender
from recommender.engine.hybrid import HybridRecommender
from recommender.engine.item_knn import ItemKNNRecommender
from recommender.engine.popularity import PopularityRecommender
from recommender.engine.user_knn import UserKNNRecommender


def _grid(**axes: list[Any]) -> tuple[dict[str, Any], ...]:
    keys = list(axes)
    return tuple(dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values()))


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    factory: type[BaseRecommender]
    defaults: dict[str, Any] = field(default_factory=dict)
    grid: tuple[dict[str, Any], ...] = ({},)
    needs_catalog: bool = False


ALGORITHMS: dict[str, AlgorithmSpec] = {
    spec.name: spec
    for spec in (
        AlgorithmSpec(
            "popularity",
            PopularityRecommender,
            {"half_life_days": None},
            _grid(half_life_days=[None, 14.0, 90.0]),
        ),
        AlgorithmSpec(
            "item_knn",
            ItemKNNRecommender,
            {"neighbours": 100, "shrinkage": 10.0, "alpha": 0.5},
            _grid(neighbours=[50, 100, 200, 400], shrinkage=[0.0, 20.0], alpha=[0.3, 0.5]),
        ),
        AlgorithmSpec(
            "user_knn",
            UserKNNRecommender,
            {"neighbours": 50, "shrinkage": 10.0},
            _grid(neighbours=[25, 50, 100, 200], shrinkage=[0.0, 20.0]),
        ),
        AlgorithmSpec(
            "ease",
            EASERecommender,
            {"l2": 500.0},
            _grid(l2=[10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0]),
        ),
        AlgorithmSpec(
            "als",
            ALSRecommender,
            {"factors": 64, "regularization": 0.1, "alpha": 5.0, "iterations": 15},
            _grid(factors=[16, 32, 64], regularization=[0.05, 0.5], alpha=[1.0, 2.0, 5.0], iterations=[15]),
        ),
        AlgorithmSpec(
            "bpr",
            BPRRecommender,
            {"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 100},
            _grid(factors=[64, 128], learning_rate=[0.01, 0.05], regularization=[0.01], iterations=[100]),
        ),
        AlgorithmSpec(
            "content",
            ContentRecommender,
            {"neighbours": 50, "category_weight": 2, "ngram_max": 1},
            _grid(neighbours=[20, 50, 100], category_weight=[1, 3], ngram_max=[1]),
            needs_catalog=True,
        ),
        AlgorithmSpec(
            "hybrid",
            HybridRecommender,
            {"components": (("ease", {}, 0.7), ("item_knn", {}, 0.3))},
            ({},),
        ),
    )
}


def algorithm_names() -> list[str]:
    return list(ALGORITHMS)


def get_spec(name: str) -> AlgorithmSpec:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise UnknownAlgorithmError(
            f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}"
        ) from None


def make_recommender(
    name: str, params: Mapping[str, Any] | None = None, *, num_threads: int = 0, seed: int = 42
) -> BaseRecommender:
    """A fresh, unfitted model: registry defaults overridden by ``params``."""
    spec = get_spec(name)
    merged = {**spec.defaults, **dict(params or {})}
    return spec.factory(num_threads=num_threads, seed=seed, **merged)
