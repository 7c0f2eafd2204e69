import numpy as np
import pytest

from recommender.engine.metrics import intra_list_diversity
from recommender.engine.registry import make_recommender
from recommender.engine.rules import RecommendationRules, mmr_rerank
from recommender.engine.types import ItemCatalog
from recommender.engine.weighting import build_interactions, interactions_from_log
from tests.unit.recommender.conftest import taste_log

DAY = 86400.0


def shop():
    """Eight customers; "tea" is the best seller, u0 bought it 100 days ago, "mug" 2 days ago."""
    users, items, times = [], [], []
    for u in range(8):
        for item in ["tea", "mug", "cup", "pot"][: 4 - u % 3]:
            users.append(f"u{u}")
            items.append(item)
            times.append(200 * DAY)
    users += ["u0", "u0", "u9", "u9"]
    items += ["tea", "mug", "spoon", "fork"]
    times += [100 * DAY, 198 * DAY, 150 * DAY, 150 * DAY]
    # u0's only "tea" row is the old one: drop the generic ones for u0
    rows = [
        (u, i, t) for u, i, t in zip(users, items, times, strict=True) if not (u == "u0" and t == 200 * DAY)
    ]
    u, i, t = zip(*rows, strict=True)
    return build_interactions(user_ids=u, item_ids=i, timestamps=t)


def top_items(model, user, n=10, **rules):
    batch = model.recommend([user], n=n, rules=RecommendationRules(**rules))
    return [x for x in batch.item_id_matrix()[0] if x is not None]


def test_already_bought_products_are_excluded_unless_the_window_has_passed():
    inter = shop()
    model = make_recommender("popularity").fit(inter)
    assert not {"tea", "mug"} & set(top_items(model, "u0"))
    # tea was bought 100 days before the latest interaction, mug 2 days before
    within = top_items(model, "u0", repurchase_window_days=30)
    assert "tea" in within and "mug" not in within
    assert "tea" not in top_items(model, "u0", repurchase_window_days=150)
    # exclusion can be switched off entirely
    assert {"tea", "mug"} <= set(top_items(model, "u0", exclude_seen=False))


def test_stock_activity_category_brand_and_explicit_exclusions():
    inter = shop()
    ids = inter.item_ids
    catalog = ItemCatalog(
        item_ids=ids,
        categories=[
            "kitchen" if i in ("cup", "pot", "mug") else "cutlery" if i in ("spoon", "fork") else "food"
            for i in ids
        ],
        brands=["acme" if i in ("cup", "spoon") else "other" for i in ids],
        in_stock=np.array([i != "cup" for i in ids]),
        active=np.array([i != "pot" for i in ids]),
    )
    model = make_recommender("popularity").fit(inter, catalog=catalog)
    shown = top_items(model, "u9")
    assert "cup" not in shown and "pot" not in shown
    assert "cup" in top_items(model, "u9", exclude_out_of_stock=False)
    assert set(top_items(model, "u9", categories=frozenset({"kitchen"}))) == {"mug"}
    assert set(top_items(model, "u9", brands=frozenset({"acme"}), exclude_out_of_stock=False)) == {"cup"}
    assert "tea" not in top_items(model, "u9", exclude_items=frozenset({"tea"}))
    batch = model.recommend(["u9"], n=5, exclude=["mug"])
    assert "mug" not in set(batch.item_id_matrix()[0])


def test_filters_without_a_catalog_are_refused():
    model = make_recommender("popularity").fit(shop())
    with pytest.raises(ValueError, match="catalog"):
        model.recommend(["u0"], rules=RecommendationRules(categories=frozenset({"kitchen"})))


def test_promoted_products_are_boosted():
    inter = shop()
    promoted = np.array([1.0 if i == "fork" else 0.0 for i in inter.item_ids])
    catalog = ItemCatalog(item_ids=inter.item_ids, promoted=promoted)
    model = make_recommender("popularity").fit(inter, catalog=catalog)
    assert top_items(model, "u5")[0] != "fork"
    assert top_items(model, "u5", promoted_boost=2.0)[0] == "fork"


def test_mmr_trades_relevance_for_diversity():
    rng = np.random.default_rng(0)
    # 40 candidates in two directions; the 20 most relevant all point the same way
    vectors = np.vstack([np.tile([1.0, 0.0], (20, 1)), np.tile([0.0, 1.0], (20, 1))]) + rng.normal(
        0, 0.05, (40, 2)
    )
    columns = np.arange(40)[None, :].repeat(3, axis=0)
    scores = np.linspace(1.0, 0.0, 40)[None, :].repeat(3, axis=0).astype(np.float32)
    plain, _ = mmr_rerank(columns, scores, vectors, 10, 0.0)
    diverse, _ = mmr_rerank(columns, scores, vectors, 10, 0.6)
    assert plain[0].tolist() == list(range(10))
    assert diverse[0, 0] == 0  # the most relevant still leads
    assert intra_list_diversity(diverse, vectors) > intra_list_diversity(plain, vectors) + 0.15
    assert (diverse[0] >= 20).any()


def test_diversity_knob_changes_real_lists(clusters):
    model = make_recommender("item_knn", {"neighbours": 10}).fit(clusters)
    plain = model.recommend(clusters.user_ids, n=4)
    diverse = model.recommend(clusters.user_ids, n=4, rules=RecommendationRules(diversity=0.9))
    vectors = model.item_vectors()
    assert intra_list_diversity(diverse.items, vectors) > intra_list_diversity(plain.items, vectors)


def test_rule_values_are_checked():
    with pytest.raises(ValueError):
        RecommendationRules(diversity=1.5)
    with pytest.raises(ValueError):
        RecommendationRules(repurchase_window_days=-1)


@pytest.mark.parametrize("diversity", [0.0, 0.3])
def test_batch_scoring_without_blocked_products_equals_masking_them(diversity):
    """The batch job leaves out-of-stock and inactive products out of the score computation;
    the lists, reasons and explanations are those of scoring everything and masking them."""
    log = taste_log(n_users=90, n_items=40, per_user=12, seed=3)
    # Three products nobody bought: cold columns, masked unless the model scores cold products.
    universe = [*sorted(set(log.item_ids.tolist())), "new-1", "new-2", "new-3"]
    inter = interactions_from_log(log, item_universe=universe)
    ids = inter.item_ids
    rng = np.random.default_rng(7)
    catalog = ItemCatalog(
        item_ids=ids,
        in_stock=rng.random(len(ids)) > 0.2,
        active=rng.random(len(ids)) > 0.1,
        promoted=(rng.random(len(ids)) > 0.8).astype(np.float32),
    )
    model = make_recommender("als", {"factors": 8, "iterations": 5}, num_threads=1).fit(
        inter, catalog=catalog
    )
    assert model.scores_column_subset
    rules = RecommendationRules(diversity=diversity, promoted_boost=0.5, repurchase_window_days=10)
    rows = np.r_[np.arange(inter.n_users), -1]  # and one customer the model does not know
    subset = list(model.iter_batches(rows, n=6, rules=rules, chunk_size=16))
    model.scores_column_subset = False  # this model only: score every product, then mask
    masked = list(model.iter_batches(rows, n=6, rules=rules, chunk_size=16))
    blocked = np.flatnonzero(~(catalog.in_stock & catalog.active))
    assert len(blocked)
    for a, b in zip(subset, masked, strict=True):
        assert not np.isin(a.items, blocked).any()
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
        np.testing.assert_array_equal(a.reasons, b.reasons)
        np.testing.assert_array_equal(a.because, b.because)
