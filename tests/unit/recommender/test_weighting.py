import numpy as np
import pytest

from recommender.engine.weighting import EventWeights, build_interactions

DAY = 86400.0


def weight(inter, user, item):
    return inter.matrix[inter.user_index[user], inter.item_index[item]]


def test_event_kinds_rank_purchase_over_cart_over_view():
    inter = build_interactions(
        user_ids=["u", "u", "u", "v"],
        item_ids=["p", "c", "v", "p"],
        kinds=["purchase", "add_to_cart", "view", "purchase"],
    )
    assert weight(inter, "u", "p") > weight(inter, "u", "c") > weight(inter, "u", "v") > 0


def test_quantity_and_saturation():
    inter = build_interactions(user_ids=["u", "v"], item_ids=["x", "x"], quantities=[10, 1])
    assert weight(inter, "u", "x") == pytest.approx(np.log1p(10))
    assert weight(inter, "v", "x") == pytest.approx(np.log1p(1))
    raw = build_interactions(user_ids=["u", "v"], item_ids=["x", "x"], quantities=[10, 1], saturate=False)
    assert weight(raw, "u", "x") == pytest.approx(10)


def test_returns_remove_credit():
    inter = build_interactions(
        user_ids=["u", "u", "u", "u", "v"],
        item_ids=["x", "x", "y", "y", "y"],
        quantities=[3, -3, 4, -1, 1],
        saturate=False,
    )
    assert inter.matrix[inter.user_index["u"]].nnz == 1  # x fully returned: the pair is gone
    assert weight(inter, "u", "y") == pytest.approx(3)


def test_recency_decay_halves_at_half_life():
    inter = build_interactions(
        user_ids=["u", "v"],
        item_ids=["x", "x"],
        timestamps=[0.0, 30 * DAY],
        half_life_days=30,
        saturate=False,
    )
    assert weight(inter, "u", "x") == pytest.approx(0.5)
    assert weight(inter, "v", "x") == pytest.approx(1.0)


def test_last_seen_is_aligned_with_matrix_data():
    inter = build_interactions(
        user_ids=["u", "u", "v", "u"], item_ids=["y", "x", "x", "y"], timestamps=[5.0, 7.0, 1.0, 9.0]
    )
    seen = {}
    m = inter.matrix
    for row in range(m.shape[0]):
        for pos in range(m.indptr[row], m.indptr[row + 1]):
            seen[(inter.user_ids[row], inter.item_ids[m.indices[pos]])] = inter.last_seen_at[pos]
    assert seen == {("u", "x"): 7.0, ("u", "y"): 9.0, ("v", "x"): 1.0}


def test_item_universe_keeps_cold_products_and_drops_unknown_ones():
    inter = build_interactions(user_ids=["u", "u"], item_ids=["x", "gone"], item_universe=["x", "new"])
    assert list(inter.item_ids) == ["x", "new"]
    assert inter.matrix.nnz == 1
    assert inter.item_user_counts.tolist() == [1, 0]


def test_unknown_event_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown event kinds"):
        build_interactions(user_ids=["u"], item_ids=["x"], kinds=["wishlist"], weights=EventWeights())
