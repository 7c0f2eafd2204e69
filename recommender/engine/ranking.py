"""Exact top-n selection on dense score chunks, fast enough to keep up with the matrix multiply.

``np.argpartition`` over a 20,000-column row costs more than computing the row's scores
(about 3.5 ns per element against 2.5 for a 64-factor dot product), which would make the
batch scorer twice as slow as ``implicit``'s C++ top-k. Instead the columns are cut into
``B`` interleaved blocks (column ``j`` belongs to block ``j mod nb``), the block maxima are
found with a few vectorised ``np.maximum`` folds (memory bandwidth, SIMD), and only the n
blocks with the largest maxima can hold the top n: the n-th largest block maximum is a
lower bound on the n-th largest score, and every score at or above it lies in one of those
blocks. The exact top n is then taken from ``n × B`` candidates.
"""

from __future__ import annotations

import numpy as np

BLOCK = 64
_MIN_COLUMNS_FOR_BLOCKS = 4 * BLOCK


def _sorted_top(scores: np.ndarray, columns: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top n of candidate ``scores`` (with their ``columns``), best first, ties by column."""
    if scores.shape[1] > n:
        part = np.argpartition(scores, -n, axis=1)[:, -n:]
        scores = np.take_along_axis(scores, part, axis=1)
        columns = np.take_along_axis(columns, part, axis=1)
    order = np.lexsort((columns, -scores), axis=1) if scores.size else np.zeros(scores.shape, dtype=np.int64)
    return np.take_along_axis(columns, order, axis=1), np.take_along_axis(scores, order, axis=1)


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns and scores of the n best entries of each row, best first.

    Entries equal to ``-inf`` are never returned: their column is ``-1`` and their score
    NaN, so a customer with fewer than n eligible products gets a shorter list.
    """
    m, width = scores.shape
    n = int(min(n, width))
    if n <= 0 or m == 0:
        return np.full((m, max(n, 0)), -1, dtype=np.int32), np.full((m, max(n, 0)), np.nan, dtype=np.float32)
    nb = width // BLOCK
    if width < _MIN_COLUMNS_FOR_BLOCKS or n >= nb // 2:
        columns = np.broadcast_to(np.arange(width, dtype=np.int64), scores.shape)
        cols, vals = _sorted_top(scores, columns, n)
    else:
        folded = np.maximum(scores[:, : nb * BLOCK // 2], scores[:, nb * BLOCK // 2 : nb * BLOCK])
        while folded.shape[1] > nb:
            half = folded.shape[1] // 2
            folded = np.maximum(folded[:, :half], folded[:, half:])
        best_blocks = np.argpartition(folded, -n, axis=1)[:, -n:]
        candidates = (best_blocks[:, :, None] + nb * np.arange(BLOCK)).reshape(m, n * BLOCK)
        tail = width - nb * BLOCK
        if tail:
            candidates = np.concatenate(
                [candidates, np.broadcast_to(np.arange(nb * BLOCK, width), (m, tail))], axis=1
            )
        cols, vals = _sorted_top(np.take_along_axis(scores, candidates, axis=1), candidates, n)
    cols = cols.astype(np.int32)
    vals = vals.astype(np.float32, copy=True)
    missing = ~np.isfinite(vals) & (vals < 0)
    cols[missing] = -1
    vals[missing] = np.nan
    return cols, vals


def top_n_sparse_rows(matrix, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top n of each row of a sparse matrix (absent entries never selected)."""
    dense = matrix.toarray().astype(np.float32)
    present = np.zeros(dense.shape, dtype=bool)
    coo = matrix.tocoo()
    present[coo.row, coo.col] = True
    dense[~present] = -np.inf
    return top_n(dense, n)
