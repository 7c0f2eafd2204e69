"""Every algorithm finds the obvious answer on the two-cluster data set (see conftest)."""

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.engine.base import Recommender
from recommender.engine.errors import CapacityError, TrainingDataError, UnknownAlgorithmError
from recommender.engine.registry import algorithm_names, make_recommender
from recommender.engine.types import Interactions, Reason
from recommender.engine.weighting import build_interactions, interactions_from_log

from .conftest import cluster_log, missing_item

SMALL = {
    "item_knn": {"neighbours": 10, "shrinkage": 0.0},
    "user_knn": {"neighbours": 5, "shrinkage": 0.0},
    "ease": {"l2": 1.0},
    "als": {"factors": 2, "regularization": 0.1, "alpha": 10.0, "iterations": 20},
    "bpr": {"factors": 8, "learning_rate": 0.05, "iterations": 300},
    "content": {"neighbours": 9},
    "hybrid": {"components": [("ease", {"l2": 1.0}, 0.6), ("item_knn", {"neighbours": 10}, 0.4)]},
}


def test_registry_names_are_the_contract():
    assert set(algorithm_names()) == {
        "popularity",
        "item_knn",
        "user_knn",
        "ease",
        "als",
        "bpr",
        "content",
        "hybrid",
    }
    with pytest.raises(UnknownAlgorithmError):
        make_recommender("svd++")


@pytest.mark.parametrize("name", ["item_knn", "user_knn", "ease", "als", "bpr", "content", "hybrid"])
def test_recovers_the_missing_cluster_product(name, clusters, cluster_catalog):
    model = make_recommender(name, SMALL[name], num_threads=1, seed=3)
    model.fit(clusters, catalog=cluster_catalog)
    assert isinstance(model, Recommender)
    batch = model.recommend(clusters.user_ids, n=3)
    top = batch.item_id_matrix()[:, 0]
    expected = np.array([missing_item(u) for u in clusters.user_ids])
    share = (top == expected).mean()
    # every model but content must be exact; content cannot tell cluster-mates apart by text
    # beyond the cluster, so it must at least stay inside the cluster.
    if name == "content":
        assert all(t[0] == e[0] for t, e in zip(top, expected, strict=True))
    else:
        assert share == 1.0, (name, share)


def test_popularity_ranks_by_count_and_decays_with_age():
    day = 86400.0
    inter = build_interactions(
        user_ids=["u1", "u2", "u3", "u4", "u1", "u2", "u3"],
        item_ids=["old", "old", "old", "new", "x", "x", "new"],
        timestamps=[0, 0, 0, 100 * day, 50 * day, 50 * day, 100 * day],
        saturate=False,
    )
    plain = make_recommender("popularity").fit(inter)
    assert plain.recommend(["nobody"], n=3).item_id_matrix()[0].tolist() == ["old", "new", "x"]
    decayed = make_recommender("popularity", {"half_life_days": 10}).fit(inter)
    assert decayed.recommend(["nobody"], n=3).item_id_matrix()[0].tolist() == ["new", "x", "old"]


def test_training_errors_are_clear():
    empty = build_interactions(user_ids=[], item_ids=[])
    with pytest.raises(TrainingDataError, match="empty"):
        make_recommender("item_knn").fit(empty)
    one = build_interactions(user_ids=["u", "u"], item_ids=["x", "y"])
    with pytest.raises(TrainingDataError, match="single customer"):
        make_recommender("ease").fit(one)


def test_ease_refuses_catalogs_over_its_limit(clusters):
    with pytest.raises(CapacityError, match="limited to 3 products"):
        make_recommender("ease", {"max_items": 3}).fit(clusters)


def test_content_needs_product_texts(clusters):
    with pytest.raises(TrainingDataError, match="product texts"):
        make_recommender("content").fit(clusters)


def test_unknown_customers_get_the_cold_start_list(clusters):
    model = make_recommender("ease", {"l2": 1.0}).fit(clusters)
    batch = model.recommend(["u00", "stranger"], n=3)
    assert batch.user_rows.tolist() == [0, -1]
    assert (batch.reasons[1] == Reason.POPULAR).all()
    assert batch.items[1].min() >= 0


def test_histories_score_new_customers_with_their_few_products(clusters):
    model = make_recommender("als", SMALL["als"], num_threads=1).fit(clusters)
    batch = model.recommend(["newcomer"], n=2, histories=[["b1", "b2", "b3"]])
    assert set(batch.item_id_matrix()[0]) <= {"b0", "b4"}


@pytest.mark.parametrize("name", ["item_knn", "ease", "als", "content"])
def test_similar_items_stay_in_the_cluster(name, clusters, cluster_catalog):
    model = make_recommender(name, SMALL[name], num_threads=1).fit(clusters, catalog=cluster_catalog)
    similar = model.similar_items(["a1", "b3", "unknown"], n=3)
    lists = similar.to_lists()
    assert all(item.startswith("a") for item, _ in lists[0])
    assert all(item.startswith("b") for item, _ in lists[1])
    assert "a1" not in [item for item, _ in lists[0]]
    assert lists[2] == []


def test_hybrid_scores_cold_products_by_content(clusters, cluster_catalog):
    # a new scarf nobody bought yet: CF models cannot rank it, the hybrid can
    ids = np.append(clusters.item_ids, "a9")
    inter = Interactions(
        matrix=__import__("scipy.sparse", fromlist=["hstack"])
        .hstack([clusters.matrix, np.zeros((clusters.n_users, 1), dtype=np.float32)])
        .tocsr(),
        user_ids=clusters.user_ids,
        item_ids=ids,
    )
    catalog = cluster_catalog.aligned_to(ids)
    catalog = type(catalog)(
        item_ids=ids,
        names=list(catalog.names[:-1]) + ["red wool winter scarf model 9"],
        categories=list(catalog.categories[:-1]) + ["scarves"],
    )
    ease = make_recommender("ease", {"l2": 1.0}).fit(inter, catalog=catalog)
    assert "a9" not in set(ease.recommend(["u00"], n=10).item_id_matrix()[0])
    hybrid = make_recommender("hybrid", SMALL["hybrid"]).fit(inter, catalog=catalog)
    assert "a9" in set(hybrid.recommend(["u00"], n=3).item_id_matrix()[0])


def test_batches_stream_every_customer_once_and_match_recommend(clusters):
    model = make_recommender("item_knn", SMALL["item_knn"]).fit(clusters)
    batches = list(model.iter_batches(n=2, chunk_size=7))
    assert [len(b) for b in batches] == [7, 7, 6]
    streamed = np.concatenate([b.items for b in batches])
    direct = model.recommend(clusters.user_ids, n=2).items
    np.testing.assert_array_equal(streamed, direct)


def test_seeded_models_are_reproducible():
    inter = interactions_from_log(cluster_log(seed=5))
    a = (
        make_recommender("bpr", SMALL["bpr"], num_threads=1, seed=11)
        .fit(inter)
        .recommend(inter.user_ids, n=3)
    )
    b = (
        make_recommender("bpr", SMALL["bpr"], num_threads=1, seed=11)
        .fit(inter)
        .recommend(inter.user_ids, n=3)
    )
    np.testing.assert_array_equal(a.items, b.items)


def test_batches_report_unknown_rows_as_none_with_the_cold_start_list(clusters):
    model = make_recommender("item_knn", SMALL["item_knn"]).fit(clusters)
    rows = np.array([3, -1, 0, -1])
    batches = list(model.iter_batches(rows, n=2, chunk_size=3))
    user_ids = [u for b in batches for u in b.user_ids.tolist()]
    assert user_ids == [clusters.user_ids[3], None, clusters.user_ids[0], None]
    reported_rows = np.concatenate([b.user_rows for b in batches])
    np.testing.assert_array_equal(reported_rows, rows)
    items = np.concatenate([b.items for b in batches])
    cold = model.recommend(["nobody"], n=2)
    np.testing.assert_array_equal(items[1], cold.items[0])
    np.testing.assert_array_equal(items[3], cold.items[0])
    np.testing.assert_array_equal(items[0], model.recommend([clusters.user_ids[3]], n=2).items[0])
    # Without unknown rows the ids keep their dtype.
    (only_known,) = list(model.iter_batches(np.array([1, 2]), n=2))
    assert only_known.user_ids.dtype == clusters.user_ids.dtype


@pytest.mark.parametrize("row", [-2, 20, 10**6])
def test_batches_refuse_rows_outside_the_model(clusters, row):
    model = make_recommender("item_knn", SMALL["item_knn"]).fit(clusters)
    with pytest.raises(ValueError, match="outside the model"):
        list(model.iter_batches(np.array([0, row]), n=2))


@pytest.mark.parametrize("algorithm", ["als", "bpr"])
def test_known_customers_with_empty_rows_get_the_fallback_in_a_warm_chunk(algorithm, monkeypatch):
    """Factor models score a mixed chunk whole and overwrite the cold rows: same lists as the
    gather-and-copy path every other model takes."""
    log = cluster_log()
    base = interactions_from_log(log)
    inter = Interactions(
        matrix=sp.vstack([base.matrix, sp.csr_matrix((1, base.n_items), dtype=np.float32)]).tocsr(),
        user_ids=np.asarray([*base.user_ids.tolist(), "quiet"], dtype=object),
        item_ids=base.item_ids,
    )
    model = make_recommender(algorithm, SMALL[algorithm], num_threads=1, seed=3).fit(inter)
    (fast,) = list(model.iter_batches(np.array([0, inter.n_users - 1, 5]), n=3))
    monkeypatch.setattr(type(model), "scores_known_rows_directly", False)
    (slow,) = list(model.iter_batches(np.array([0, inter.n_users - 1, 5]), n=3))
    np.testing.assert_array_equal(fast.items, slow.items)
    np.testing.assert_array_equal(fast.reasons, slow.reasons)
    np.testing.assert_array_equal(fast.items[1], model.recommend(["nobody"], n=3).items[0])
