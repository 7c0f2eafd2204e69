import inspect

import numpy as np

from recommender.engine.evaluate import evaluate
from recommender.engine.split import random_holdout
from recommender.engine.tuning import hold_out, tune
from recommender.engine.types import InteractionLog

from .conftest import taste_log

FAST_GRIDS = {
    "item_knn": [{"neighbours": 20}, {"neighbours": 40}],
    "user_knn": [{"neighbours": 10}],
    "ease": [{"l2": 5.0}, {"l2": 50.0}],
    "als": [{"factors": 4}],
    "bpr": [{"factors": 8, "iterations": 30}],
}


def test_tune_has_no_way_to_receive_test_data():
    parameters = inspect.signature(tune).parameters
    assert "test" not in " ".join(parameters)
    assert list(parameters)[0] == "train_log"


def test_auto_choice_does_not_depend_on_the_test_file():
    log = taste_log()
    train, test = random_holdout(log, test_ratio=0.25, seed=1)
    # a second "test file": the same customers with entirely different (made-up) products
    other = InteractionLog(
        user_ids=test.user_ids, item_ids=np.asarray([f"zz{i}" for i in range(len(test))], dtype=object)
    )
    a = evaluate(train=train, test=test, algorithm="auto", k=5, seed=3)
    b = evaluate(train=train, test=other, algorithm="auto", k=5, seed=3)
    assert (a["algorithm"], a["params"]) == (b["algorithm"], b["params"])
    assert a["tuning"] == {**b["tuning"], "tuning_seconds": a["tuning"]["tuning_seconds"]}
    assert a["ndcg@5"] > 0 and b["ndcg@5"] == 0.0


def test_winner_is_the_best_validation_trial_and_blends_compete():
    train, _ = random_holdout(taste_log(), test_ratio=0.25, seed=1)
    result = tune(train, k=5, seed=2, grids=FAST_GRIDS)
    scored = [t for t in result.trials if t.error is None]
    assert result.validation_ndcg == max(t.validation_ndcg for t in scored)
    assert any(t.algorithm == "hybrid" for t in scored)
    assert result.best_per_algorithm[result.algorithm].params == result.params


def test_hold_out_drops_products_already_in_training_and_keeps_unknown_ones_unhittable():
    train = InteractionLog(user_ids=np.array(["a", "a", "b"]), item_ids=np.array(["x", "y", "x"]))
    test = InteractionLog(user_ids=np.array(["a", "a", "b", "new"]), item_ids=np.array(["x", "q", "y", "x"]))
    held = hold_out(train, test)
    assert held.cold_users == 1
    by_user = dict(zip(held.train.user_ids[held.users].tolist(), held.relevant, strict=True))
    assert by_user["a"].tolist() == [held.train.n_items]  # "q" is unknown: a column past the catalog
    assert by_user["b"].tolist() == [held.train.item_index["y"]]
