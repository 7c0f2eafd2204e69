"""Metrics against cases computed by hand (the arithmetic is in each test's comment)."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.engine import metrics

RECS = np.array([[1, 2, 3, 4], [5, 6, -1, -1]])
RELEVANT = [{1, 3, 9}, {7}]


def test_precision_and_recall():
    # user 0 hits ranks 1 and 3: P = 2/4, R = 2/3; user 1 hits nothing.
    assert metrics.precision_at_k(RECS, RELEVANT, 4) == pytest.approx((0.5 + 0.0) / 2)
    assert metrics.recall_at_k(RECS, RELEVANT, 4) == pytest.approx((2 / 3 + 0.0) / 2)
    # at k=1 only rank 1 counts: user 0 P=1, R=1/3
    assert metrics.precision_at_k(RECS, RELEVANT, 1) == pytest.approx(0.5)
    assert metrics.recall_at_k(RECS, RELEVANT, 1) == pytest.approx(1 / 6)


def test_ndcg():
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG (3 relevant) = 1 + 1/log2(3) + 1/2
    idcg = 1 + 1 / math.log2(3) + 0.5
    assert metrics.ndcg_at_k(RECS, RELEVANT, 4) == pytest.approx((1.5 / idcg + 0.0) / 2)
    # a perfect list scores 1
    assert metrics.ndcg_at_k(np.array([[3, 1, 9, 0]]), [{1, 3, 9}], 3) == pytest.approx(1.0)


def test_map():
    # AP@4 of user 0 = (1/1 + 2/3) / min(3, 4) = 5/9; user 1 = 0
    assert metrics.map_at_k(RECS, RELEVANT, 4) == pytest.approx((5 / 9) / 2)


def test_hit_rate_and_mrr():
    assert metrics.hit_rate_at_k(RECS, RELEVANT, 4) == pytest.approx(0.5)
    # user 0 first hit at rank 1; a list whose first hit is rank 3 has RR 1/3
    assert metrics.mrr_at_k(RECS, RELEVANT, 4) == pytest.approx(0.5)
    assert metrics.mrr_at_k(np.array([[8, 7, 3]]), [{3}], 3) == pytest.approx(1 / 3)


def test_users_without_relevant_items_are_skipped():
    assert metrics.precision_at_k(np.array([[1, 2], [1, 2]]), [{1}, set()], 2) == pytest.approx(0.5)


def test_relevant_as_sparse_matrix_matches_sets():
    truth = sp.csr_matrix((np.ones(4), ([0, 0, 0, 1], [1, 3, 9, 7])), shape=(2, 10))
    assert metrics.ndcg_at_k(RECS, truth, 4) == pytest.approx(metrics.ndcg_at_k(RECS, RELEVANT, 4))


def test_empty_slot_never_hits_an_item_of_another_user():
    # -1 must not be read as the last item of the previous user
    assert metrics.precision_at_k(np.array([[0, 5], [-1, -1]]), [{5}, {0}], 2) == pytest.approx(0.25)


def test_coverage_novelty_diversity():
    assert metrics.catalog_coverage(RECS, 10) == pytest.approx(0.6)
    counts = np.zeros(10)
    counts[[1, 2, 3, 4, 5, 6]] = [8, 4, 2, 1, 8, 4]
    # -log2(count/8) = 0, 1, 2, 3, 0, 1 -> mean 7/6
    assert metrics.novelty(RECS, counts, 8) == pytest.approx(7 / 6)
    vectors = np.array([[0, 0], [1, 0], [0, 1], [2, 0]], dtype=float)
    # pairs (1,2)=0, (1,3)=1, (2,3)=0: mean similarity 1/3, diversity 2/3
    assert metrics.intra_list_diversity(np.array([[1, 2, 3]]), vectors) == pytest.approx(2 / 3)
    assert metrics.intra_list_diversity(np.array([[1, 2]]), vectors) == pytest.approx(1.0)


def test_rmse_mae():
    assert metrics.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert metrics.mae([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        metrics.rmse([], [])


def test_report_keys_follow_k():
    report = metrics.ranking_report(RECS, RELEVANT, 3, n_items=10)
    assert {"ndcg@3", "precision@3", "recall@3", "map@3", "coverage"} <= set(report)
