"""Ranking and rating metrics as plain functions over arrays.

Conventions, fixed here once so that every caller agrees:

* ``recommended`` is an ``(users, k')`` integer array of item columns, best first, ``-1``
  for an empty slot; only the first ``k`` columns count.
* ``relevant`` is one collection of item columns per user (any iterable, or a CSR matrix
  whose row i holds user i's relevant items). Users with no relevant item are skipped by
  the per-user averages, as is usual in the literature.
* recall@k divides by the number of relevant items (not by ``min(k, |relevant|)``);
  MAP@k divides by ``min(k, |relevant|)`` so that a perfect list scores 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp


def _relevant_sets(relevant, n_users: int) -> list[np.ndarray]:
    if sp.issparse(relevant):
        csr = sp.csr_matrix(relevant)
        return [csr.indices[csr.indptr[u] : csr.indptr[u + 1]] for u in range(n_users)]
    sets = [np.unique(np.fromiter(r, dtype=np.int64)) for r in relevant]
    if len(sets) != n_users:
        raise ValueError(f"{len(sets)} relevant sets for {n_users} users")
    return sets


def hit_matrix(recommended: np.ndarray, relevant, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(users, k)`` matrix of hits and the number of relevant items per user."""
    recs = np.asarray(recommended)[:, :k]
    m = recs.shape[0]
    sets = _relevant_sets(relevant, m)
    counts = np.array([len(s) for s in sets], dtype=np.int64)
    if not counts.sum():
        return np.zeros(recs.shape, dtype=bool), counts
    # One vectorised membership test: encode (user, item) pairs as sorted integer keys.
    width = int(max(recs.max(initial=0), max(int(s.max()) for s in sets if len(s)))) + 1
    relevant_keys = np.concatenate([u * width + s for u, s in enumerate(sets) if len(s)])
    relevant_keys.sort()
    rec_keys = np.arange(m, dtype=np.int64)[:, None] * width + recs
    pos = np.minimum(np.searchsorted(relevant_keys, rec_keys), len(relevant_keys) - 1)
    hits = (relevant_keys[pos] == rec_keys) & (recs >= 0)
    return hits, counts


def _per_user_mean(values: np.ndarray, counts: np.ndarray) -> float:
    mask = counts > 0
    return float(values[mask].mean()) if mask.any() else 0.0


def precision_at_k(recommended: np.ndarray, relevant, k: int) -> float:
    hits, counts = hit_matrix(recommended, relevant, k)
    return _per_user_mean(hits.sum(axis=1) / k, counts)


def recall_at_k(recommended: np.ndarray, relevant, k: int) -> float:
    hits, counts = hit_matrix(recommended, relevant, k)
    return _per_user_mean(hits.sum(axis=1) / np.maximum(counts, 1), counts)


def _dcg_weights(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg_per_user(recommended: np.ndarray, relevant, k: int) -> tuple[np.ndarray, np.ndarray]:
    """nDCG@k of each user (binary gains) and their relevant counts."""
    hits, counts = hit_matrix(recommended, relevant, k)
    discounts = _dcg_weights(k)
    dcg = (hits[:, : len(discounts)] * discounts[: hits.shape[1]]).sum(axis=1)
    ideal_cumsum = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cumsum[np.minimum(counts, k)]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0), counts


def ndcg_at_k(recommended: np.ndarray, relevant, k: int) -> float:
    values, counts = ndcg_per_user(recommended, relevant, k)
    return _per_user_mean(values, counts)


def map_at_k(recommended: np.ndarray, relevant, k: int) -> float:
    hits, counts = hit_matrix(recommended, relevant, k)
    ranks = np.arange(1, hits.shape[1] + 1)
    precision_at_rank = np.cumsum(hits, axis=1) / ranks
    ap = (precision_at_rank * hits).sum(axis=1) / np.maximum(np.minimum(counts, k), 1)
    return _per_user_mean(ap, counts)


def hit_rate_at_k(recommended: np.ndarray, relevant, k: int) -> float:
    hits, counts = hit_matrix(recommended, relevant, k)
    return _per_user_mean(hits.any(axis=1).astype(float), counts)


def mrr_at_k(recommended: np.ndarray, relevant, k: int) -> float:
    hits, counts = hit_matrix(recommended, relevant, k)
    first = np.argmax(hits, axis=1)
    rr = np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)
    return _per_user_mean(rr, counts)


def catalog_coverage(recommended: np.ndarray, n_items: int, k: int | None = None) -> float:
    """Share of the catalog that appears in at least one list."""
    recs = np.asarray(recommended)[:, :k] if k else np.asarray(recommended)
    shown = np.unique(recs[recs >= 0])
    return float(len(shown) / n_items) if n_items else 0.0


def novelty(
    recommended: np.ndarray, item_user_counts: np.ndarray, n_users: int, k: int | None = None
) -> float:
    """Mean self-information ``-log2(p(item))`` of recommended items, p = share of customers.

    Items nobody interacted with in training get the count 1 (the most novel possible).
    """
    recs = np.asarray(recommended)[:, :k] if k else np.asarray(recommended)
    shown = recs[recs >= 0]
    if not len(shown) or n_users <= 0:
        return 0.0
    p = np.maximum(np.asarray(item_user_counts, dtype=float)[shown], 1.0) / n_users
    return float(np.mean(-np.log2(p)))


def intra_list_diversity(recommended: np.ndarray, item_vectors: np.ndarray, k: int | None = None) -> float:
    """Mean pairwise cosine distance ``1 - cos`` within each list, averaged over lists.

    ``item_vectors`` are one row per item column (normalised here); lists with fewer than
    two items are skipped.
    """
    recs = np.asarray(recommended)[:, :k] if k else np.asarray(recommended)
    vectors = np.asarray(item_vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    values = []
    for row in recs:
        items = row[row >= 0]
        if len(items) < 2:
            continue
        e = unit[items]
        sims = e @ e.T
        n = len(items)
        mean_sim = (sims.sum() - np.trace(sims)) / (n * (n - 1))
        values.append(1.0 - mean_sim)
    return float(np.mean(values)) if values else 0.0


def rmse(predicted: Sequence[float], actual: Sequence[float]) -> float:
    p, a = np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)
    if p.shape != a.shape or not p.size:
        raise ValueError("predicted and actual must be non-empty and of the same shape")
    return float(np.sqrt(np.mean((p - a) ** 2)))


def mae(predicted: Sequence[float], actual: Sequence[float]) -> float:
    p, a = np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)
    if p.shape != a.shape or not p.size:
        raise ValueError("predicted and actual must be non-empty and of the same shape")
    return float(np.mean(np.abs(p - a)))


def ranking_report(
    recommended: np.ndarray,
    relevant: Iterable | sp.spmatrix,
    k: int,
    *,
    n_items: int,
    item_user_counts: np.ndarray | None = None,
    n_users: int | None = None,
    item_vectors: np.ndarray | None = None,
) -> dict[str, float]:
    """Every ranking metric at k, keyed as the CLI prints them (``ndcg@10`` …)."""
    sets = _relevant_sets(relevant, len(recommended)) if not sp.issparse(relevant) else relevant
    report = {
        f"ndcg@{k}": ndcg_at_k(recommended, sets, k),
        f"precision@{k}": precision_at_k(recommended, sets, k),
        f"recall@{k}": recall_at_k(recommended, sets, k),
        f"map@{k}": map_at_k(recommended, sets, k),
        f"hit_rate@{k}": hit_rate_at_k(recommended, sets, k),
        f"mrr@{k}": mrr_at_k(recommended, sets, k),
        "coverage": catalog_coverage(recommended, n_items, k),
    }
    if item_user_counts is not None and n_users:
        report["novelty"] = novelty(recommended, item_user_counts, n_users, k)
    if item_vectors is not None:
        report["diversity"] = intra_list_diversity(recommended, item_vectors, k)
    return report
