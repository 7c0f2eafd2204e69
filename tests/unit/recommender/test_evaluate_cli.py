import json

import pytest

from recommender.engine.errors import InteractionFileError, TrainingDataError
from recommender.engine.evaluate import main, read_interactions_csv, run

from .conftest import taste_log, write_csv


@pytest.fixture
def interactions_csv(tmp_path):
    path = tmp_path / "interactions.csv"
    write_csv(path, taste_log(n_users=45, n_items=30, per_user=10))
    return path


def options(**kw):
    base = {"split": "user-random", "test_ratio": 0.25, "seed": 42, "k": 5, "json": True, "num_threads": 1}
    return {**base, **kw}


def test_named_algorithm_prints_one_json_object(interactions_csv):
    result = json.loads(run(options(interactions=str(interactions_csv), algorithm="ease")))
    for key in (
        "algorithm",
        "params",
        "ndcg@5",
        "precision@5",
        "recall@5",
        "map@5",
        "coverage",
        "fit_seconds",
        "recommend_seconds",
    ):
        assert key in result
    assert result["algorithm"] == "ease"
    assert 0 < result["ndcg@5"] <= 1


def test_train_and_test_files_and_temporal_split(tmp_path, interactions_csv):
    log = read_interactions_csv(interactions_csv)
    assert log.ratings is not None and len(log) == 450
    train_path, test_path = tmp_path / "train.csv", tmp_path / "test.csv"
    lines = interactions_csv.read_text().splitlines()
    rows = lines[1:]
    train_path.write_text("\n".join([lines[0], *(r for i, r in enumerate(rows) if i % 5)]) + "\n")
    test_path.write_text("\n".join([lines[0], *(r for i, r in enumerate(rows) if not i % 5)]) + "\n")
    result = json.loads(run(options(train=str(train_path), test=str(test_path), algorithm="item_knn")))
    assert result["test_interactions"] == 90
    assert result["users_evaluated"] == 45
    temporal = json.loads(
        run(options(interactions=str(interactions_csv), split="temporal", algorithm="popularity"))
    )
    assert temporal["algorithm"] == "popularity"


def test_all_lists_every_algorithm_best_first_and_a_table_without_json(interactions_csv):
    results = json.loads(run(options(interactions=str(interactions_csv), algorithm="all", tune=False)))
    scored = [r for r in results if "skipped" not in r]
    assert [r["ndcg@5"] for r in scored] == sorted((r["ndcg@5"] for r in scored), reverse=True)
    assert {r["algorithm"] for r in results} == {
        "popularity",
        "item_knn",
        "user_knn",
        "ease",
        "als",
        "bpr",
        "content",
        "hybrid",
    }
    assert next(r for r in results if r["algorithm"] == "content")["skipped"]
    table = run(options(interactions=str(interactions_csv), algorithm="popularity", json=False))
    assert table.splitlines()[0].startswith("algorithm") and "ndcg@5" in table


def test_bad_files_give_clear_errors(tmp_path, capsys):
    missing = tmp_path / "missing.csv"
    missing.write_text("customer,item_id\n1,2\n")
    with pytest.raises(InteractionFileError, match="missing column"):
        read_interactions_csv(missing)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InteractionFileError, match="empty"):
        read_interactions_csv(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("user_id,item_id\n")
    with pytest.raises(InteractionFileError, match="no interactions"):
        read_interactions_csv(header_only)
    one_user = tmp_path / "one.csv"
    one_user.write_text("user_id,item_id\n" + "".join(f"u1,i{i}\n" for i in range(10)))
    with pytest.raises(TrainingDataError, match="single customer"):
        run(options(interactions=str(one_user), algorithm="ease"))
    assert main(["--interactions", str(missing), "--algorithm", "ease"]) == 2
    assert "missing column(s) user_id" in capsys.readouterr().err
    with pytest.raises(InteractionFileError, match="--train and --test"):
        run(options(train=str(one_user)))
