import numpy as np

from recommender.engine.registry import make_recommender
from recommender.engine.types import Reason
from recommender.engine.weighting import build_interactions


def test_item_based_lists_say_which_owned_product_led_to_each_pick(clusters):
    model = make_recommender("item_knn", {"neighbours": 10}).fit(clusters)
    batch = model.recommend(clusters.user_ids, n=1)
    owned = {u: set(clusters.item_ids[clusters.matrix[r].indices]) for r, u in enumerate(clusters.user_ids)}
    for row, recs in enumerate(batch.to_lists()):
        explanation = recs[0].explanation
        assert explanation.reason == Reason.BECAUSE_YOU_BOUGHT
        assert explanation.items[0] in owned[clusters.user_ids[row]]
        assert explanation.items[0][0] == recs[0].item[0]  # same cluster
        assert explanation.text == f"Because you bought {explanation.items[0]}"


def test_explain_ranks_the_contributing_products():
    # x is bought with y by everyone, z only once with y: y is explained by x first
    inter = build_interactions(
        user_ids=["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"],
        item_ids=["x", "y", "x", "y", "x", "y", "z", "y", "x", "z"],
    )
    model = make_recommender("ease", {"l2": 0.5}).fit(inter)
    explanation = model.explain("e", "y")
    assert explanation.reason == Reason.BECAUSE_YOU_BOUGHT
    assert explanation.items[0] == "x"
    assert explanation.weights[0] >= explanation.weights[-1]
    assert explanation.describe({"x": "Green tea"}) == "Because you bought Green tea"


def test_als_explanation_uses_implicit_decomposition(clusters):
    model = make_recommender("als", {"factors": 2, "iterations": 20}, num_threads=1).fit(clusters)
    explanation = model.explain("u00", "a0")
    assert explanation.reason == Reason.BECAUSE_YOU_BOUGHT
    assert set(explanation.items) <= {"a1", "a2", "a3", "a4"}


def test_fallbacks_explain_themselves(clusters):
    model = make_recommender("popularity").fit(clusters)
    assert model.explain("u00", "a0").reason == Reason.POPULAR
    assert (model.recommend(["u00"], n=2).reasons == Reason.POPULAR).all()
    user_knn = make_recommender("user_knn").fit(clusters)
    assert user_knn.recommend(["u00"], n=1).to_lists()[0][0].explanation.reason == Reason.SIMILAR_CUSTOMERS
    assert user_knn.explain("stranger", "a0").reason == Reason.POPULAR


def test_segment_fallback_says_popular_in_your_segment():
    users = [f"u{i}" for i in range(40) for _ in range(2)]
    items = [("x" if i < 20 else "y") if j == 0 else "z" for i in range(40) for j in range(2)]
    segments = {f"u{i}": ("young" if i < 20 else "old") for i in range(40)}
    inter = build_interactions(user_ids=users, item_ids=items, user_segments=segments)
    model = make_recommender("popularity").fit(inter)
    batch = model.recommend(["u1", "u30"], n=1, rules=None)
    lists = batch.to_lists()
    assert lists[0] == [] or lists[0][0].explanation.reason == Reason.POPULAR_IN_SEGMENT
    # with exclusion off both see their own segment's favourite first after the shared z
    from recommender.engine.rules import RecommendationRules

    batch = model.recommend(["u1", "u30"], n=3, rules=RecommendationRules(exclude_seen=False))
    ids = batch.item_id_matrix()
    assert ids[0].tolist().index("x") < ids[0].tolist().index("y")
    assert ids[1].tolist().index("y") < ids[1].tolist().index("x")
    assert (batch.reasons == Reason.POPULAR_IN_SEGMENT).all()
    assert np.all(batch.because == -1)


def test_batch_attribution_agrees_with_single_explanations():
    # The vectorised "because" of a whole batch must name the same product as explain()
    # does one pair at a time, for the dense (EASE, ALS) and the sparse (item-kNN) paths.
    from recommender.engine.weighting import interactions_from_log

    from .conftest import taste_log

    inter = interactions_from_log(taste_log(n_users=40, n_items=25, per_user=8))
    for name, params in [("ease", {"l2": 10.0}), ("item_knn", {"neighbours": 10}), ("bpr", {"factors": 8})]:
        model = make_recommender(name, params, num_threads=1).fit(inter)
        batch = model.recommend(inter.user_ids, n=4)
        for row, user in enumerate(inter.user_ids):
            for rank in range(4):
                item = batch.items[row, rank]
                single = model.explain(user, inter.item_ids[item])
                if batch.because[row, rank] < 0:
                    assert single.reason != Reason.BECAUSE_YOU_BOUGHT
                else:
                    assert inter.item_ids[batch.because[row, rank]] == single.items[0], (name, user, rank)


def test_factor_models_batched_attribution_equals_the_segmented_maximum():
    # Factor models attribute with one padded, batched product; on histories of very different
    # lengths (padding in every block) it names the same products as the base class's
    # segmented maximum over (customer, rank, owned product) entries.
    from recommender.engine.base import BaseRecommender
    from recommender.engine.weighting import interactions_from_log

    from .conftest import taste_log

    log = taste_log(n_users=120, n_items=60, per_user=12, seed=5)
    heavy = np.isin(log.user_ids, np.unique(log.user_ids)[::4])  # a quarter keep their history
    keep = heavy | (np.random.default_rng(1).random(len(log.user_ids)) < 0.3)
    log = type(log)(user_ids=log.user_ids[keep], item_ids=log.item_ids[keep], timestamps=log.timestamps[keep])
    inter = interactions_from_log(log)
    lengths = np.diff(inter.matrix.indptr)
    assert lengths.max() >= 3 * max(lengths.min(), 1)
    for name in ("als", "bpr"):
        model = make_recommender(name, {"factors": 8}, num_threads=1).fit(inter)
        batch = model.recommend(inter.user_ids, n=6)
        histories = inter.matrix[inter.user_rows(inter.user_ids)]
        reasons = np.full(batch.items.shape, Reason.MATCHES_YOUR_TASTE, dtype=np.int8)
        because = np.full(batch.items.shape, -1, dtype=np.int32)
        for start in range(0, len(reasons), 64):  # the generic path, block by block
            rows = slice(start, start + 64)
            BaseRecommender._attribute_block(
                model, histories[rows], batch.items[rows], reasons[rows], because[rows]
            )
        np.testing.assert_array_equal(batch.because, because, err_msg=name)
        np.testing.assert_array_equal(batch.reasons, reasons, err_msg=name)
        assert (because >= 0).mean() > 0.5
