"""Training time per algorithm and batch scoring speed against raw ``implicit``, as JSON.

Synthetic retail-shaped data (seeded): 100,000 customers × 20,000 products × 3,000,000
interactions at ``--scale 1``, with Zipf-skewed product popularity and customer activity
and 50 taste groups so that the models have structure to find. Everything runs on one
thread (BLAS and implicit) so that the figures are comparable between runs.

The scoring comparison fits one ALS model and then times, on the same model and users:

* ``implicit_recommend``: ``AlternatingLeastSquares.recommend`` for every customer, top 20,
  already-bought products filtered (implicit's C++ top-k; nothing stored), and the same
  call without the filter for context;
* ``engine_scores``: the engine's ``iter_batches`` (the path the Django service streams into
  the recommendations table), top 20 with the default rules, arrays only;
* ``engine_scores_and_explanations``: the same with the "because you bought" attribution.

    python benchmarks/recommender_training.py --scale 1 --out out/recommender_training.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender.engine.registry import make_recommender  # noqa: E402
from recommender.engine.types import Interactions, ItemCatalog  # noqa: E402

GROUPS = 50
GROUP_WORDS = [f"theme{g}" for g in range(GROUPS)]
KINDS = ["mug", "candle", "card", "bag", "lamp", "frame", "clock", "tin", "bowl", "cushion"]


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


def synthetic_interactions(
    n_users: int, n_items: int, n_interactions: int, seed: int
) -> tuple[Interactions, ItemCatalog]:
    """Half of each customer's purchases come from their taste group, half from the whole catalog."""
    rng = np.random.default_rng(seed)
    activity = rng.permutation(zipf_weights(n_users, 0.6))
    users = rng.choice(n_users, size=n_interactions, p=activity)
    popularity = zipf_weights(n_items, 0.9)
    rank_to_item = rng.permutation(n_items)
    global_items = rank_to_item[rng.choice(n_items, size=n_interactions, p=popularity)]
    group_of_user = rng.integers(0, GROUPS, n_users)
    per_group = n_items // GROUPS
    in_group = rng.choice(per_group, size=n_interactions, p=zipf_weights(per_group, 0.9))
    group_items = group_of_user[users] + GROUPS * in_group
    items = np.where(rng.random(n_interactions) < 0.5, group_items, global_items)
    matrix = sp.csr_matrix(
        (np.ones(n_interactions, dtype=np.float32), (users, items)), shape=(n_users, n_items)
    )
    matrix.sum_duplicates()
    matrix.data = np.log1p(matrix.data).astype(np.float32)
    interactions = Interactions(
        matrix=matrix,
        user_ids=np.arange(n_users),
        item_ids=np.arange(n_items),
    )
    item_group = np.arange(n_items) % GROUPS
    catalog = ItemCatalog(
        item_ids=np.arange(n_items),
        names=[f"{GROUP_WORDS[g]} {KINDS[i % len(KINDS)]} {i}" for i, g in enumerate(item_group)],
        categories=[KINDS[i % len(KINDS)] for i in range(n_items)],
    )
    return interactions, catalog


TRAINING = {
    "popularity": {},
    "item_knn": {"neighbours": 100, "shrinkage": 10.0},
    "user_knn": {"neighbours": 50},
    "ease": {"l2": 500.0},
    "als": {"factors": 64, "regularization": 0.1, "alpha": 5.0, "iterations": 15},
    "bpr": {"factors": 64, "learning_rate": 0.05, "iterations": 100},
    "content": {"neighbours": 50},
    "hybrid": {"components": [("item_knn", {"neighbours": 100}, 0.5), ("als", {"factors": 64}, 0.5)]},
}


def time_training(interactions: Interactions, catalog: ItemCatalog, names: list[str], seed: int) -> dict:
    results = {}
    for name in names:
        model = make_recommender(name, TRAINING[name], num_threads=1, seed=seed)
        start = time.perf_counter()
        try:
            model.fit(interactions, catalog=catalog)
        except Exception as error:  # noqa: BLE001 - a benchmark records the failure and moves on
            results[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        results[name] = {"params": model.params, "fit_seconds": round(time.perf_counter() - start, 2)}
        print(f"trained {name} in {results[name]['fit_seconds']} s", file=sys.stderr)
    return results


def time_scoring(interactions: Interactions, seed: int, n: int, repeats: int) -> dict:
    model = make_recommender("als", TRAINING["als"], num_threads=1, seed=seed).fit(interactions)
    users = np.arange(interactions.n_users)
    matrix = interactions.matrix

    def implicit_recommend():
        ids, _ = model.model_.recommend(users, matrix, N=n, filter_already_liked_items=True)
        return ids

    def implicit_recommend_unfiltered():
        # Context for the figure above: the same call without already-bought filtering.
        ids, _ = model.model_.recommend(users, matrix, N=n, filter_already_liked_items=False)
        return ids

    def engine(explain: bool):
        def run():
            total = 0
            for batch in model.iter_batches(n=n, explain=explain):
                total += batch.items.size
            return total

        return run

    def best_of(fn) -> tuple[float, object]:
        times, out = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - start)
        return min(times), out

    raw_seconds, raw_ids = best_of(implicit_recommend)
    unfiltered_seconds, _ = best_of(implicit_recommend_unfiltered)
    engine_seconds, _ = best_of(engine(False))
    explained_seconds, _ = best_of(engine(True))
    # Same lists? (ties in float scores may order differently; compare as sets per customer)
    sample = np.random.default_rng(seed).choice(len(users), size=min(2000, len(users)), replace=False)
    ours = model.recommend(interactions.user_ids[sample], n=n, explain=False).items
    agreement = float(np.mean([len(set(a) & set(b)) / n for a, b in zip(ours, raw_ids[sample], strict=True)]))
    return {
        "model": {"algorithm": "als", **TRAINING["als"]},
        "users": int(interactions.n_users),
        "items": int(interactions.n_items),
        "n": n,
        "repeats": repeats,
        "implicit_recommend_seconds": round(raw_seconds, 3),
        "implicit_recommend_unfiltered_seconds": round(unfiltered_seconds, 3),
        "engine_scores_seconds": round(engine_seconds, 3),
        "engine_scores_and_explanations_seconds": round(explained_seconds, 3),
        "engine_over_implicit": round(engine_seconds / raw_seconds, 3),
        "engine_with_explanations_over_implicit": round(explained_seconds / raw_seconds, 3),
        "top_n_agreement_with_implicit": round(agreement, 4),
    }


def time_engine_scoring(
    interactions: Interactions, catalog: ItemCatalog, names: list[str], seed: int, n: int
):
    """Batch scoring time of the other models through the same engine path (no raw baseline)."""
    out = {}
    for name in names:
        model = make_recommender(name, TRAINING[name], num_threads=1, seed=seed)
        try:
            model.fit(interactions, catalog=catalog)
        except Exception as error:  # noqa: BLE001
            out[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        start = time.perf_counter()
        for _ in model.iter_batches(n=n, explain=True):
            pass
        out[name] = {"score_all_seconds": round(time.perf_counter() - start, 2)}
        print(f"scored everyone with {name} in {out[name]['score_all_seconds']} s", file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 100k customers, 20k products, 3M rows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--algorithms", default=",".join(TRAINING), help="comma-separated names to train")
    parser.add_argument("--score-algorithms", default="", help="also time batch scoring of these models")
    parser.add_argument("--skip-scoring", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    n_users, n_items, n_rows = (
        int(100_000 * args.scale),
        int(20_000 * args.scale),
        int(3_000_000 * args.scale),
    )
    report: dict = {"scale": args.scale, "seed": args.seed, "threads": 1, "python": platform.python_version()}
    with threadpool_limits(1):
        start = time.perf_counter()
        interactions, catalog = synthetic_interactions(n_users, n_items, n_rows, args.seed)
        report["data"] = {
            "users": n_users,
            "items": n_items,
            "rows_generated": n_rows,
            "distinct_pairs": int(interactions.matrix.nnz),
            "generation_seconds": round(time.perf_counter() - start, 2),
        }
        names = [a for a in args.algorithms.split(",") if a]
        report["training"] = time_training(interactions, catalog, names, args.seed)
        if not args.skip_scoring:
            report["batch_scoring"] = time_scoring(interactions, args.seed, args.n, args.repeats)
        score_names = [a for a in args.score_algorithms.split(",") if a]
        if score_names:
            report["engine_batch_scoring"] = time_engine_scoring(
                interactions, catalog, score_names, args.seed, args.n
            )
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
