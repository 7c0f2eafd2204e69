import numpy as np
import pytest

from recommender.engine.ranking import top_n


@pytest.mark.parametrize("width", [50, 256, 1000, 4096 + 37])
def test_top_n_matches_a_full_sort(width):
    rng = np.random.default_rng(width)
    scores = rng.standard_normal((40, width)).astype(np.float32)
    cols, vals = top_n(scores, 10)
    expected = np.argsort(-scores, axis=1)[:, :10]
    np.testing.assert_array_equal(cols, expected)
    np.testing.assert_allclose(vals, np.take_along_axis(scores, expected, axis=1))


def test_top_n_finds_winners_in_the_tail_columns():
    scores = np.zeros((2, 1000 + 13), dtype=np.float32)
    scores[0, -1] = 5.0
    scores[1, -7] = 3.0
    cols, _ = top_n(scores, 1)
    assert cols.ravel().tolist() == [1012, 1006]


def test_excluded_entries_are_never_returned():
    scores = np.full((2, 300), -np.inf, dtype=np.float32)
    scores[0, [4, 9]] = [1.0, 2.0]
    cols, vals = top_n(scores, 3)
    assert cols[0].tolist() == [9, 4, -1]
    assert np.isnan(vals[0, 2])
    assert (cols[1] == -1).all()
