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


@pytest.mark.parametrize("timed", [False, True])
def test_no_events_gives_an_empty_matrix_not_an_index_error(timed):
    extra = {"timestamps": [], "half_life_days": 30.0} if timed else {}
    inter = build_interactions(user_ids=[], item_ids=[], kinds=[], quantities=[], **extra)
    assert inter.matrix.shape == (0, 0)
    assert inter.matrix.nnz == 0
    if timed:
        assert inter.last_seen_at is not None and len(inter.last_seen_at) == 0


def test_no_events_over_universes_keeps_their_shape():
    inter = build_interactions(
        user_ids=[],
        item_ids=[],
        timestamps=[],
        half_life_days=30.0,
        now=100 * DAY,
        user_universe=[7, 8],
        item_universe=["x", "y", "z"],
    )
    assert inter.matrix.shape == (2, 3)
    assert inter.matrix.nnz == 0
    assert list(inter.user_ids) == [7, 8]
    assert len(inter.last_seen_at) == 0


def test_events_all_outside_the_universes_give_an_empty_matrix():
    inter = build_interactions(
        user_ids=["u", "v"],
        item_ids=["gone", "x"],
        timestamps=[DAY, 2 * DAY],
        half_life_days=30.0,
        user_universe=["u"],
        item_universe=["x"],
    )
    assert inter.matrix.shape == (1, 1)
    assert inter.matrix.nnz == 0
    assert len(inter.last_seen_at) == 0


def test_training_on_no_events_is_a_clear_error():
    from recommender.engine.errors import TrainingDataError
    from recommender.engine.registry import make_recommender

    inter = build_interactions(user_ids=[], item_ids=[], timestamps=[], half_life_days=30.0)
    with pytest.raises(TrainingDataError, match="empty"):
        make_recommender("popularity").fit(inter)


@pytest.mark.parametrize(
    "universe", [np.array([3, 5, 9, 12]), [12, 3, 9, 5], np.array([3, 5, 9, 12], dtype=object)]
)
def test_integer_universes_sorted_or_not_give_the_same_columns(universe):
    """Sorted integer ids take a binary search, anything else the dict: same answer either way."""
    inter = build_interactions(
        user_ids=np.array([1, 1, 2, 2, 2]),
        item_ids=np.array([5, 4, 12, 3, 99]),  # 4 and 99 are outside the universe
        item_universe=universe,
    )
    assert list(inter.item_ids) == list(universe)
    got = {(int(u), int(i)) for u, i in zip(*inter.matrix.nonzero(), strict=True)}
    col = {int(v): c for c, v in enumerate(list(universe))}
    assert got == {(0, col[5]), (1, col[12]), (1, col[3])}
