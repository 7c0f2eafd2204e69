"""Offline evaluation from CSV files: the engine behind ``manage.py evaluate_recommender``.

Pure (no Django, no database): read the interactions, split or take the given test file,
fit (``auto`` and ``all`` tune on a validation split carved from the training file alone),
and score on the test file. Also runnable as ``python -m recommender.engine.evaluate``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from recommender.engine.errors import InteractionFileError, RecommenderError, TrainingDataError
from recommender.engine.registry import ALGORITHMS, get_spec, make_recommender
from recommender.engine.split import split_log
from recommender.engine.tuning import HeldOut, TuningResult, hold_out, score_on, tune
from recommender.engine.types import InteractionLog, ItemCatalog

REQUIRED_COLUMNS = ("user_id", "item_id")
SPLITS = ("user-random", "temporal", "leave-last-out")


def _parse_time(value: str, path: Path, line: int) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise InteractionFileError(
            f"{path}, line {line}: timestamp {value!r} is neither a number nor an ISO date"
        ) from None


def read_interactions_csv(path: str | Path) -> InteractionLog:
    """One interaction per row: ``user_id,item_id`` and optionally ``rating,timestamp``.

    Extra columns are ignored; ids are kept as strings. Rows with an empty user or item
    are errors, not silently dropped: they usually mean a broken export.
    """
    path = Path(path)
    if not path.is_file():
        raise InteractionFileError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InteractionFileError(f"{path}: the file is empty (expected a header with user_id,item_id)")
        names = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise InteractionFileError(
                f"{path}: missing column(s) {', '.join(missing)}; the header is {','.join(header)!r} "
                f"and must contain user_id,item_id (optionally rating,timestamp)"
            )
        u, i = names.index("user_id"), names.index("item_id")
        r = names.index("rating") if "rating" in names else None
        t = names.index("timestamp") if "timestamp" in names else None
        users: list[str] = []
        items: list[str] = []
        ratings: list[float] = []
        times: list[float] = []
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(names):
                raise InteractionFileError(
                    f"{path}, line {line}: expected {len(names)} columns, got {len(row)}"
                )
            user, item = row[u].strip(), row[i].strip()
            if not user or not item:
                raise InteractionFileError(f"{path}, line {line}: empty user_id or item_id")
            users.append(user)
            items.append(item)
            if r is not None:
                try:
                    ratings.append(float(row[r]) if row[r].strip() else math.nan)
                except ValueError:
                    raise InteractionFileError(
                        f"{path}, line {line}: rating {row[r]!r} is not a number"
                    ) from None
            if t is not None:
                times.append(_parse_time(row[t].strip(), path, line))
    if not users:
        raise InteractionFileError(f"{path}: the file has a header but no interactions")
    return InteractionLog(
        user_ids=np.asarray(users, dtype=object),
        item_ids=np.asarray(items, dtype=object),
        ratings=np.asarray(ratings, dtype=float) if r is not None else None,
        timestamps=np.asarray(times, dtype=float) if t is not None else None,
    )


def read_items_csv(path: str | Path) -> ItemCatalog:
    """Product texts for the content model: ``item_id`` and any of name, description, category, brand."""
    path = Path(path)
    if not path.is_file():
        raise InteractionFileError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "item_id" not in [f.strip().lower() for f in reader.fieldnames]:
            raise InteractionFileError(f"{path}: an items file needs an item_id column")
        rows = [{(k or "").strip().lower(): (v or "") for k, v in row.items()} for row in reader]
    if not rows:
        raise InteractionFileError(f"{path}: the items file has no rows")

    def column(name: str) -> list[str] | None:
        return [row.get(name, "") for row in rows] if name in rows[0] else None

    return ItemCatalog(
        item_ids=np.asarray([row["item_id"].strip() for row in rows], dtype=object),
        names=column("name"),
        descriptions=column("description"),
        categories=column("category"),
        brands=column("brand"),
    )


def _check_train(log: InteractionLog) -> None:
    if not len(log):
        raise TrainingDataError("the training set is empty")
    if log.n_users < 2:
        raise TrainingDataError(
            "the training set has a single customer: recommendations need at least two customers"
        )


def _result(
    name: str,
    params: dict[str, Any],
    k: int,
    held_out: HeldOut,
    *,
    seed: int,
    num_threads: int,
    catalog: ItemCatalog | None,
) -> dict[str, Any]:
    model = make_recommender(name, params, num_threads=num_threads, seed=seed)
    start = time.perf_counter()
    model.fit(held_out.train, catalog=catalog)
    fit_seconds = time.perf_counter() - start
    metrics = score_on(model, held_out, k, full_report=True)
    result: dict[str, Any] = {"algorithm": name, "params": _jsonable(model.params), "k": k}
    result.update({key: round(value, 6) for key, value in metrics.items() if key != "recommend_seconds"})
    result["fit_seconds"] = round(fit_seconds, 4)
    result["recommend_seconds"] = round(metrics["recommend_seconds"], 4)
    result["users_evaluated"] = len(held_out.users)
    result["cold_test_users_skipped"] = held_out.cold_users
    result["train_interactions"] = int(held_out.train.matrix.nnz)
    result["test_interactions"] = held_out.test_interactions
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _tuning_summary(tuning: TuningResult) -> dict[str, Any]:
    return {
        "selected_on": "validation split of the training data",
        f"validation_ndcg@{tuning.k}": round(tuning.validation_ndcg, 6),
        "candidates_tried": len(tuning.trials),
        "tuning_seconds": round(tuning.seconds, 2),
    }


def evaluate(
    *,
    train: InteractionLog,
    test: InteractionLog,
    algorithm: str = "auto",
    k: int = 10,
    seed: int = 42,
    num_threads: int = 1,
    params: dict[str, Any] | None = None,
    tune_params: bool | None = None,
    catalog: ItemCatalog | None = None,
    validation_split: str = "user-random",
    validation_ratio: float = 0.2,
) -> dict[str, Any] | list[dict[str, Any]]:
    """Fit and score; a dict for one algorithm or ``auto``, a list (best first) for ``all``.

    ``tune_params`` defaults to True for ``auto``/``all`` and False for a named algorithm
    (its registry defaults, overridden by ``params``). Tuning only ever sees ``train``.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    _check_train(train)
    if not len(test):
        raise InteractionFileError("the test set is empty")
    if algorithm not in ("auto", "all"):
        get_spec(algorithm)
    tune_params = algorithm in ("auto", "all") if tune_params is None else tune_params
    held_out = hold_out(train, test, catalog=catalog)
    if not held_out.users.size:
        raise TrainingDataError("no test customer is known in the training set: nothing to evaluate")
    common = {"seed": seed, "num_threads": num_threads, "catalog": catalog}
    tuning_kwargs = {
        "k": k,
        "seed": seed,
        "num_threads": num_threads,
        "catalog": catalog,
        "validation_split": validation_split,
        "validation_ratio": validation_ratio,
    }

    if algorithm == "auto":
        tuning = tune(train, **tuning_kwargs)
        result = _result(tuning.algorithm, tuning.params, k, held_out, **common)
        result["requested"] = "auto"
        result["tuning"] = _tuning_summary(tuning)
        return result

    if algorithm == "all":
        results: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        tuning = tune(train, blend=True, **tuning_kwargs) if tune_params else None
        for name, spec in ALGORITHMS.items():
            if spec.needs_catalog and (catalog is None or not catalog.has_text):
                skipped.append({"algorithm": name, "skipped": "needs product texts (--items FILE)"})
                continue
            if tuning is not None:
                trial = tuning.best_per_algorithm.get(name)
                if trial is None:
                    skipped.append(
                        {"algorithm": name, "skipped": "could not be trained on the validation split"}
                    )
                    continue
                chosen = trial.params
            else:
                chosen = {}
            try:
                entry = _result(name, chosen, k, held_out, **common)
            except (TrainingDataError, ValueError) as error:
                skipped.append({"algorithm": name, "skipped": str(error)})
                continue
            if tuning is not None:
                entry[f"validation_ndcg@{k}"] = round(tuning.best_per_algorithm[name].validation_ndcg, 6)
                entry["selected_by_auto"] = name == tuning.algorithm
            results.append(entry)
        results.sort(key=lambda r: -r[f"ndcg@{k}"])
        return results + skipped

    chosen = dict(params or {})
    tuning = None
    if tune_params:
        tuning = tune(train, algorithms=[algorithm], blend=False, **tuning_kwargs)
        chosen = {**tuning.params, **chosen}
    result = _result(algorithm, chosen, k, held_out, **common)
    if tuning is not None:
        result["tuning"] = _tuning_summary(tuning)
    return result


# -- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The CLI contract, shared by ``python -m`` and the Django management command."""
    parser.add_argument("--train", help="training interactions CSV (user_id,item_id[,rating,timestamp])")
    parser.add_argument("--test", help="test interactions CSV, read only to score")
    parser.add_argument("--interactions", help="one interactions CSV to split into train and test")
    parser.add_argument("--split", choices=SPLITS, default="user-random", help="how --interactions is split")
    parser.add_argument(
        "--test-ratio", type=float, default=0.25, help="share of rows held out (default 0.25)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--algorithm",
        default="auto",
        help=f"auto, all, or one of: {', '.join(ALGORITHMS)} (default auto)",
    )
    parser.add_argument("--k", type=int, default=10, help="list length for the metrics (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--params", help="JSON object of parameters for a named algorithm")
    parser.add_argument(
        "--tune",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="tune parameters on a validation split of the training data (default: on for auto/all)",
    )
    parser.add_argument(
        "--items", help="optional product CSV (item_id,name,description,category) for content"
    )
    parser.add_argument(
        "--num-threads", type=int, default=1, help="threads for BLAS and implicit (default 1)"
    )
    parser.add_argument("--validation-ratio", type=float, default=0.2)


def run(options: dict[str, Any]) -> str:
    """Evaluate as the options say and return the text to print (JSON or a table)."""
    train_path, test_path, single = options.get("train"), options.get("test"), options.get("interactions")
    split = options.get("split") or "user-random"
    seed = int(options.get("seed", 42))
    if single and (train_path or test_path):
        raise InteractionFileError("give either --interactions or --train with --test, not both")
    if single:
        log = read_interactions_csv(single)
        _check_train(log)
        train, test = split_log(
            log, method=split, test_ratio=float(options.get("test_ratio", 0.25)), seed=seed
        )
        validation_split = split
    elif train_path and test_path:
        train, test = read_interactions_csv(train_path), read_interactions_csv(test_path)
        validation_split = "user-random"
    else:
        raise InteractionFileError("give --train and --test, or --interactions with --split")
    if validation_split == "leave-last-out":
        validation_split = "user-random"
    params = json.loads(options["params"]) if options.get("params") else None
    catalog = read_items_csv(options["items"]) if options.get("items") else None
    k = int(options.get("k", 10))
    result = evaluate(
        train=train,
        test=test,
        algorithm=options.get("algorithm") or "auto",
        k=k,
        seed=seed,
        num_threads=int(options.get("num_threads", 1)),
        params=params,
        tune_params=options.get("tune"),
        catalog=catalog,
        validation_split=validation_split,
        validation_ratio=float(options.get("validation_ratio", 0.2)),
    )
    if options.get("json"):
        return json.dumps(result)
    return format_table(result if isinstance(result, list) else [result], k)


def format_table(results: Sequence[dict[str, Any]], k: int) -> str:
    columns = [
        f"ndcg@{k}",
        f"precision@{k}",
        f"recall@{k}",
        f"map@{k}",
        "coverage",
        "fit_seconds",
        "recommend_seconds",
    ]
    header = ["algorithm", *columns, "params"]
    lines = []
    for r in results:
        if "skipped" in r:
            lines.append([r["algorithm"], *(["-"] * len(columns)), f"skipped: {r['skipped']}"])
            continue
        cells = [r["algorithm"]]
        cells += [f"{r[c]:.4f}" if not c.endswith("seconds") else f"{r[c]:.2f}" for c in columns]
        cells.append(json.dumps(r["params"], separators=(",", ":")))
        lines.append(cells)
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header) - 1)]
    out = []
    for row in [header, *lines]:
        out.append(
            "  ".join(str(cell).ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        )
    if len(results) == 1 and "tuning" in results[0]:
        tuning = results[0]["tuning"]
        out.append(
            f"chosen on a validation split of the training data "
            f"(validation ndcg@{k} {tuning[f'validation_ndcg@{k}']:.4f}, "
            f"{tuning['candidates_tried']} candidates, {tuning['tuning_seconds']:.1f} s)"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recommender.engine.evaluate", description="Evaluate recommender algorithms offline."
    )
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    try:
        print(run(options))
    except (RecommenderError, ValueError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
