"""Offline quality of every recommender algorithm, printed as JSON.

Two data sets:

* MovieLens 100K (``--ratings``: ``u.data`` or a ``ratings.csv``; not shipped with the
  project, see docs/recommender.md) with a per-user random 25 % holdout. Every rating is one
  positive interaction. Reported: each algorithm with parameters tuned on a validation split
  of the training data, ``auto``'s pick, and EASE with its L2 chosen on the *test* set (an
  oracle: the best any EASE could do here, which ``auto`` must reach without peeking).
* The project's online retail slice (``--retail``) with a temporal split (last 25 % of the
  rows by time are test), customers as users and stock codes as items.

    python benchmarks/recommender_quality.py --ratings ../shared/data/movielens/ml-100k/u.data \\
        --items ../shared/data/movielens/ml-100k/u.item --out out/recommender_quality.json
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender.engine.evaluate import evaluate  # noqa: E402
from recommender.engine.registry import make_recommender  # noqa: E402
from recommender.engine.split import random_holdout, temporal_split  # noqa: E402
from recommender.engine.tuning import hold_out, score_on  # noqa: E402
from recommender.engine.types import InteractionLog, ItemCatalog  # noqa: E402

MOVIELENS_GENRES = [
    "unknown", "action", "adventure", "animation", "children", "comedy", "crime", "documentary", "drama",
    "fantasy", "film-noir", "horror", "musical", "mystery", "romance", "sci-fi", "thriller", "war", "western",
]  # fmt: skip

# Product stock codes in the retail data start with five digits (85123A, 71053, ...); the
# rest are postage, manual adjustments, discounts, bank charges, fees, samples and gift
# vouchers (POST, M, D, DOT, BANK CHARGES, AMAZONFEE, C2, PADS, S, gift_0001_20, ...).
PRODUCT_CODE = re.compile(r"^\d{5}")


def load_movielens(path: Path) -> InteractionLog:
    if path.suffix == ".csv":
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
        users = [r.get("userId") or r["user_id"] for r in rows]
        items = [r.get("movieId") or r["item_id"] for r in rows]
        times = [float(r["timestamp"]) for r in rows]
    else:
        data = np.loadtxt(path, dtype=np.int64)
        users, items, times = data[:, 0].astype(str), data[:, 1].astype(str), data[:, 3].astype(float)
    return InteractionLog(
        user_ids=np.asarray(users, dtype=object),
        item_ids=np.asarray(items, dtype=object),
        timestamps=np.asarray(times, dtype=float),
    )


def load_movielens_items(path: Path) -> ItemCatalog:
    ids, names, categories = [], [], []
    with path.open(encoding="latin-1") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("|")
            if len(fields) < 24:
                continue
            ids.append(fields[0])
            names.append(re.sub(r"\(\d{4}\)", "", fields[1]).strip())
            flags = fields[5:24]
            categories.append(" ".join(g for g, f in zip(MOVIELENS_GENRES, flags, strict=True) if f == "1"))
    return ItemCatalog(item_ids=np.asarray(ids, dtype=object), names=names, categories=categories)


def load_retail(path: Path) -> tuple[InteractionLog, ItemCatalog, dict[str, int]]:
    users, items, times = [], [], []
    names: dict[str, str] = {}
    dropped = {"no_customer": 0, "cancellation": 0, "not_a_product": 0}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if not row["CustomerID"].strip():
                dropped["no_customer"] += 1
                continue
            if row["InvoiceNo"].startswith("C") or float(row["Quantity"]) <= 0:
                dropped["cancellation"] += 1
                continue
            code = row["StockCode"].strip().upper()
            if not PRODUCT_CODE.match(code):
                dropped["not_a_product"] += 1
                continue
            users.append(row["CustomerID"].strip().split(".")[0])
            items.append(code)
            times.append(datetime.fromisoformat(row["InvoiceDate"]).timestamp())
            names.setdefault(code, row["Description"])
    log = InteractionLog(
        user_ids=np.asarray(users, dtype=object),
        item_ids=np.asarray(items, dtype=object),
        timestamps=np.asarray(times, dtype=float),
    )
    catalog = ItemCatalog(
        item_ids=np.asarray(list(names), dtype=object), names=[n.replace("_", " ") for n in names.values()]
    )
    return log, catalog, dropped


def ease_oracle(train: InteractionLog, test: InteractionLog, k: int) -> dict:
    """EASE with the L2 that scores best on the test set itself (an upper bound, not a method)."""
    held = hold_out(train, test)
    best = None
    for l2 in (25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 700.0, 1000.0, 1500.0, 2500.0):
        model = make_recommender("ease", {"l2": l2}, num_threads=1).fit(held.train)
        value = score_on(model, held, k)[f"ndcg@{k}"]
        if best is None or value > best[f"ndcg@{k}"]:
            best = {
                "algorithm": "ease (L2 chosen on test: oracle)",
                "params": {"l2": l2},
                f"ndcg@{k}": round(value, 6),
            }
    return best


def summarise(results: list[dict], k: int) -> list[dict]:
    keep = ("algorithm", "params", f"ndcg@{k}", f"precision@{k}", f"recall@{k}", f"map@{k}", "coverage",
            f"validation_ndcg@{k}", "selected_by_auto", "fit_seconds", "recommend_seconds", "skipped")  # fmt: skip
    return [{key: r[key] for key in keep if key in r} for r in results]


def run_dataset(
    name: str, train: InteractionLog, test: InteractionLog, *, k: int, seed: int, catalog, split: str
):
    start = time.perf_counter()
    results = evaluate(
        train=train, test=test, algorithm="all", k=k, seed=seed, num_threads=1, catalog=catalog,
        validation_split=split,
    )  # fmt: skip
    auto = next(r for r in results if r.get("selected_by_auto"))
    report = {
        "dataset": name,
        "train_interactions": len(train),
        "test_interactions": len(test),
        "users": int(train.n_users),
        "items": int(train.n_items),
        "algorithms": summarise(results, k),
        "auto": {"algorithm": auto["algorithm"], "params": auto["params"], f"ndcg@{k}": auto[f"ndcg@{k}"]},
        "seconds": round(time.perf_counter() - start, 1),
    }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=Path, help="MovieLens u.data or ratings.csv")
    parser.add_argument(
        "--items", type=Path, help="MovieLens u.item (titles and genres for the content model)"
    )
    parser.add_argument("--retail", type=Path, default=Path("data/online_retail/online_retail_dec2010.csv"))
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict = {"k": args.k, "seed": args.seed, "threads": 1, "python": platform.python_version()}
    with threadpool_limits(1):
        if args.ratings:
            log = load_movielens(args.ratings)
            train, test = random_holdout(log, test_ratio=0.25, seed=args.seed)
            catalog = load_movielens_items(args.items) if args.items else None
            movielens = run_dataset("movielens-100k", train, test, k=args.k, seed=args.seed, catalog=catalog,
                                    split="user-random")  # fmt: skip
            movielens["ease_oracle"] = ease_oracle(train, test, args.k)
            movielens["auto_minus_oracle_ease"] = round(
                movielens["auto"][f"ndcg@{args.k}"] - movielens["ease_oracle"][f"ndcg@{args.k}"], 6
            )
            tuned_ease = next(r for r in movielens["algorithms"] if r["algorithm"] == "ease")
            movielens["auto_minus_tuned_ease"] = round(
                movielens["auto"][f"ndcg@{args.k}"] - tuned_ease[f"ndcg@{args.k}"], 6
            )
            report["movielens"] = movielens
        if args.retail and args.retail.is_file():
            log, catalog, dropped = load_retail(args.retail)
            train, test = temporal_split(log, test_ratio=0.25)
            retail = run_dataset("online-retail-dec2010", train, test, k=args.k, seed=args.seed, catalog=catalog,
                                 split="temporal")  # fmt: skip
            retail["rows_dropped"] = dropped
            report["retail"] = retail
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
