"""Scoring a model on held-out interactions, and choosing algorithm and parameters.

``tune`` takes the *training* log only. It carves its own validation split out of it,
tries every algorithm's grid, then blends of the best models, and returns the winner by
nDCG@k on that validation split. It has no parameter through which test data could reach
it: the test file is read only by the caller, to score the refitted winner.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommender.engine.base import BaseRecommender
from recommender.engine.errors import TrainingDataError
from recommender.engine.hybrid import HybridRecommender
from recommender.engine.metrics import ndcg_at_k, ranking_report
from recommender.engine.neighbours import SparseLookup
from recommender.engine.registry import ALGORITHMS, get_spec, make_recommender
from recommender.engine.split import split_log
from recommender.engine.types import InteractionLog, Interactions, ItemCatalog
from recommender.engine.weighting import interactions_from_log


@dataclass(frozen=True, eq=False)
class HeldOut:
    """Training interactions plus, for each evaluated customer, the products to find.

    Relevant products are the held-out ones the customer did not already have in training
    (a list that excludes already-bought products cannot find those). Held-out products
    unknown to training keep a column of their own past the catalog: they count in recall's
    denominator but can never be hit.
    """

    train: Interactions
    users: np.ndarray
    relevant: list[np.ndarray]
    test_interactions: int
    cold_users: int


def hold_out(
    train_log: InteractionLog, test_log: InteractionLog, *, catalog: ItemCatalog | None = None
) -> HeldOut:
    if not len(train_log):
        raise TrainingDataError("the training set is empty")
    universe = np.unique(train_log.item_ids)
    if catalog is not None:
        universe = np.unique(
            np.concatenate([universe.astype(object), np.asarray(catalog.item_ids, dtype=object)])
        )
    train = interactions_from_log(train_log, item_universe=universe)
    rows = train.user_rows(test_log.user_ids)
    cols = train.item_columns(test_log.item_ids)
    unknown = cols < 0
    if unknown.any():
        _, codes = np.unique(np.asarray(test_log.item_ids)[unknown], return_inverse=True)
        cols = cols.copy()
        cols[unknown] = train.n_items + codes
    known_user = rows >= 0
    cold_users = len(np.unique(np.asarray(test_log.user_ids)[~known_user]))
    rows, cols = rows[known_user], cols[known_user]
    in_train = np.zeros(len(rows), dtype=bool)
    catalog_cols = cols < train.n_items
    in_train[catalog_cols] = SparseLookup(train.matrix)(rows[catalog_cols], cols[catalog_cols]) > 0
    rows, cols = rows[~in_train], cols[~in_train]
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    pair_keys = rows.astype(np.int64) * (cols.max(initial=0) + 1) + cols
    first = np.r_[True, pair_keys[1:] != pair_keys[:-1]] if len(pair_keys) else np.zeros(0, dtype=bool)
    rows, cols = rows[first], cols[first]
    users, starts = np.unique(rows, return_index=True)
    relevant = np.split(cols, starts[1:]) if len(users) else []
    return HeldOut(
        train=train, users=users, relevant=relevant, test_interactions=len(test_log), cold_users=cold_users
    )


def score_on(
    model: BaseRecommender, held_out: HeldOut, k: int, *, full_report: bool = False
) -> dict[str, float]:
    """Metrics of a fitted model on held-out data, plus ``recommend_seconds``."""
    train = held_out.train
    start = time.perf_counter()
    batch = model.recommend(train.user_ids[held_out.users], k, explain=False)
    seconds = time.perf_counter() - start
    if not full_report:
        return {f"ndcg@{k}": ndcg_at_k(batch.items, held_out.relevant, k), "recommend_seconds": seconds}
    report = ranking_report(
        batch.items,
        held_out.relevant,
        k,
        n_items=train.n_items,
        item_user_counts=train.item_user_counts,
        n_users=train.n_users,
        item_vectors=_diversity_vectors(model),
    )
    report["recommend_seconds"] = seconds
    return report


def _diversity_vectors(model: BaseRecommender) -> np.ndarray | None:
    try:
        return model.item_vectors()
    except (ValueError, np.linalg.LinAlgError):
        return None


@dataclass(frozen=True)
class Trial:
    algorithm: str
    params: dict[str, Any]
    validation_ndcg: float
    fit_seconds: float
    error: str | None = None


@dataclass(frozen=True)
class TuningResult:
    """The winner on validation, the best parameters of each algorithm, and every trial."""

    algorithm: str
    params: dict[str, Any]
    validation_ndcg: float
    k: int
    best_per_algorithm: dict[str, Trial]
    trials: tuple[Trial, ...] = field(repr=False)
    seconds: float = 0.0


def _blend_weight_sets(n_models: int) -> list[tuple[float, ...]]:
    if n_models == 2:
        return [(w, round(1.0 - w, 2)) for w in (0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)]
    return [(0.6, 0.2, 0.2), (0.5, 0.3, 0.2), (0.7, 0.2, 0.1), (0.4, 0.3, 0.3)]


def tune(
    train_log: InteractionLog,
    *,
    k: int = 10,
    seed: int = 42,
    algorithms: Sequence[str] | None = None,
    validation_split: str = "user-random",
    validation_ratio: float = 0.2,
    num_threads: int = 1,
    catalog: ItemCatalog | None = None,
    blend: bool = True,
    grids: dict[str, Sequence[dict[str, Any]]] | None = None,
    progress: Callable[[Trial], None] | None = None,
) -> TuningResult:
    """Choose algorithm and parameters by nDCG@k on a validation split of ``train_log``.

    Only ``train_log`` is read. Blends (hybrids) of the two or three best distinct models
    are tried with a few weightings, re-using the already fitted models, and win only if
    they beat every single model on validation.
    """
    started = time.perf_counter()
    sub_train, validation = split_log(
        train_log, method=validation_split, test_ratio=validation_ratio, seed=seed + 1
    )
    held_out = hold_out(sub_train, validation, catalog=catalog)
    if not held_out.users.size:
        raise TrainingDataError(
            "the validation split left no customer to evaluate; provide more interactions"
        )
    names = list(algorithms) if algorithms is not None else [n for n in ALGORITHMS if n != "hybrid"]
    trials: list[Trial] = []
    best_models: dict[str, tuple[float, BaseRecommender, Trial]] = {}
    for name in names:
        spec = get_spec(name)
        if spec.needs_catalog and (catalog is None or not catalog.has_text):
            continue
        grid = (grids or {}).get(name, spec.grid)
        for params in grid:
            params = {**spec.defaults, **params}
            model = make_recommender(name, params, num_threads=num_threads, seed=seed)
            t0 = time.perf_counter()
            try:
                model.fit(held_out.train, catalog=catalog)
            except (TrainingDataError, ValueError) as error:
                trial = Trial(name, params, float("nan"), time.perf_counter() - t0, error=str(error))
                trials.append(trial)
                if progress:
                    progress(trial)
                continue
            fit_seconds = time.perf_counter() - t0
            value = score_on(model, held_out, k)[f"ndcg@{k}"]
            trial = Trial(name, model.params, value, fit_seconds)
            trials.append(trial)
            if progress:
                progress(trial)
            if name not in best_models or value > best_models[name][0]:
                best_models[name] = (value, model, trial)
    if not best_models:
        raise TrainingDataError("no algorithm could be trained on the validation split")
    if blend:
        ranked = sorted(
            (item for item in best_models.items() if item[0] != "popularity"), key=lambda kv: -kv[1][0]
        )
        # The validation leader paired with every other family (a weaker model of another
        # kind is often the most complementary one), plus the three best together.
        candidates = [[ranked[0], other] for other in ranked[1:]]
        candidates += [list(c) for c in itertools.combinations(ranked[:3], 3)]
        for combo in candidates:
            models = [entry[1][1] for entry in combo]
            for weights in _blend_weight_sets(len(models)):
                hybrid = HybridRecommender.from_fitted(models, weights, num_threads=num_threads, seed=seed)
                t0 = time.perf_counter()
                hybrid.fit(held_out.train, catalog=catalog)
                value = score_on(hybrid, held_out, k)[f"ndcg@{k}"]
                trial = Trial("hybrid", hybrid.params, value, time.perf_counter() - t0)
                trials.append(trial)
                if progress:
                    progress(trial)
                if "hybrid" not in best_models or value > best_models["hybrid"][0]:
                    best_models["hybrid"] = (value, hybrid, trial)
        if "hybrid" in best_models and catalog is not None and catalog.has_text:
            # The cold-start switches (content for customers with few products and for
            # products nobody bought) are choices too: keep them only if validation agrees.
            _, best_hybrid, _ = best_models["hybrid"]
            for cold_users, cold_items in ((0, 0.0), (0, 0.5), (2, 0.0), (2, 0.5)):
                hybrid = HybridRecommender.from_fitted(
                    best_hybrid.models_,
                    list(best_hybrid.weights_),
                    cold_user_max_items=cold_users,
                    cold_item_weight=cold_items,
                    num_threads=num_threads,
                    seed=seed,
                )
                t0 = time.perf_counter()
                hybrid.fit(held_out.train, catalog=catalog)
                value = score_on(hybrid, held_out, k)[f"ndcg@{k}"]
                trial = Trial("hybrid", hybrid.params, value, time.perf_counter() - t0)
                trials.append(trial)
                if progress:
                    progress(trial)
                if value > best_models["hybrid"][0]:
                    best_models["hybrid"] = (value, hybrid, trial)
    winner_name, (winner_value, _, winner_trial) = max(best_models.items(), key=lambda kv: kv[1][0])
    return TuningResult(
        algorithm=winner_name,
        params=winner_trial.params,
        validation_ndcg=winner_value,
        k=k,
        best_per_algorithm={name: entry[2] for name, entry in best_models.items()},
        trials=tuple(trials),
        seconds=time.perf_counter() - started,
    )
