"""Sparse top-k similarity matrices, computed block by block.

``Xᵀ X`` of a skewed retail matrix is nearly dense for popular products, so it is never
materialised whole: each block of rows is computed dense, normalised, cut to its top k
and appended as sparse. Memory stays at one block.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from recommender.engine.ranking import top_n


def top_k_similarity(
    left: sp.csr_matrix,
    right_t: sp.csr_matrix,
    *,
    k: int,
    normalise: Callable[[np.ndarray, np.ndarray], np.ndarray],
    exclude_diagonal: bool = True,
    block: int = 1024,
) -> sp.csr_matrix:
    """Rows of ``left @ right_t`` normalised by ``normalise(dots, row_ids)``, top k kept per row."""
    n_rows, n_cols = left.shape[0], right_t.shape[1]
    k = max(1, min(k, n_cols - (1 if exclude_diagonal else 0)))
    indptr = [0]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        dots = np.asarray((left[start:stop] @ right_t).toarray(), dtype=np.float32)
        sims = normalise(dots, np.arange(start, stop))
        present = dots > 0
        sims[~present] = -np.inf
        if exclude_diagonal:
            rows = np.arange(stop - start)
            sims[rows, rows + start] = -np.inf
        cols, vals = top_n(sims, k)
        keep = cols >= 0
        counts = keep.sum(axis=1)
        indptr.extend((indptr[-1] + np.cumsum(counts)).tolist())
        indices.append(cols[keep])
        data.append(vals[keep])
    matrix = sp.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0, dtype=np.float32),
            np.concatenate(indices) if indices else np.zeros(0, dtype=np.int32),
            np.asarray(indptr, dtype=np.int64),
        ),
        shape=(n_rows, n_cols),
    )
    matrix.sort_indices()
    return matrix


class SparseLookup:
    """Element lookup ``S[i, j]`` for many pairs at once, in O(log nnz) each.

    A canonical CSR matrix's (row, column) keys are globally sorted, so a binary search
    over them replaces scipy's slow fancy indexing for millions of pairs.
    """

    def __init__(self, matrix: sp.csr_matrix) -> None:
        matrix = sp.csr_matrix(matrix)
        matrix.sort_indices()
        self.width = matrix.shape[1]
        rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        self.keys = rows * self.width + matrix.indices
        self.values = matrix.data

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if not len(self.keys):
            return np.zeros(len(rows), dtype=np.float32)
        wanted = np.asarray(rows, dtype=np.int64) * self.width + np.asarray(cols, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        return np.where(self.keys[pos] == wanted, self.values[pos], 0.0).astype(np.float32)
