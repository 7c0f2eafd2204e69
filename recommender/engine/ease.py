"""EASE, the shallow linear autoencoder (Steck, WWW 2019).

A closed-form item-item weight matrix ``B`` minimising ``‖X − XB‖² + λ‖B‖²`` with a zero
diagonal. It is the strongest simple baseline on public benchmarks, at the price of
inverting an items × items matrix: quadratic memory, cubic time, hence the item limit.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from recommender.engine.base import BaseRecommender
from recommender.engine.errors import CapacityError


def _dense_gram(matrix: sp.csr_matrix, dtype, block: int = 1024) -> np.ndarray:
    """``XᵀX`` as a dense array, built by row blocks (the sparse product of a skewed retail
    matrix can hold more entries than the dense result has cells)."""
    n_items = matrix.shape[1]
    item_user = matrix.T.tocsr()
    gram = np.empty((n_items, n_items), dtype=dtype)
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        gram[start:stop] = (item_user[start:stop] @ matrix).toarray()
    return gram


def _mirror_upper_triangle(square: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle onto the lower one in place (LAPACK fills only one half)."""
    n = square.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        tile = square[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        tile[lower] = tile.T[lower]
        if start:
            square[start:stop, :start] = square[:start, start:stop].T


class EASERecommender(BaseRecommender):
    """``B = I − P · diag(1/diag(P))`` with ``P = (XᵀX + λI)⁻¹``.

    ``max_items`` guards the inversion: 20,000 products need 1.6 GB (float32) and minutes
    of CPU; past the limit ``fit`` raises ``CapacityError`` naming the alternatives.
    """

    name = "ease"
    item_based = True
    dense_pair_weights = True

    def __init__(self, *, l2: float = 500.0, max_items: int = 20_000, **common) -> None:
        super().__init__(**common)
        self.l2 = float(l2)
        self.max_items = int(max_items)
        self.params = {"l2": self.l2}

    def _fit(self, matrix: sp.csr_matrix) -> None:
        n_items = matrix.shape[1]
        if n_items > self.max_items:
            raise CapacityError(
                f"EASE inverts an items × items matrix and is limited to {self.max_items:,} products; "
                f"this catalog has {n_items:,}. Use item_knn or als, or raise max_items knowingly "
                f"(memory grows with the square, time with the cube of the product count)."
            )
        dtype = np.float64 if n_items <= 4000 else np.float32
        gram = _dense_gram(matrix, dtype)
        gram[np.diag_indices(n_items)] += self.l2
        # Cholesky inverse of the symmetric positive definite Gram matrix: half the work of
        # inv(), and done in place so that peak memory stays at one items × items matrix.
        potrf, potri = scipy.linalg.get_lapack_funcs(("potrf", "potri"), (gram,))
        factor, info = potrf(gram, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE Gram matrix is not positive definite (potrf info={info})")
        inverse, info = potri(factor, lower=False, overwrite_c=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE inversion failed (potri info={info})")
        _mirror_upper_triangle(inverse)
        diagonal = np.diag(inverse).copy()
        inverse /= -diagonal[None, :]
        inverse[np.diag_indices(n_items)] = 0.0
        self.weights_ = np.ascontiguousarray(inverse, dtype=np.float32)

    def _score(self, histories: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        return np.asarray(histories @ self.weights_, dtype=np.float32)

    def _pair_weights(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.weights_[sources, targets]

    def _pair_weight_block(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.weights_[np.ix_(sources, targets)]

    def _item_similarity_rows(self, items: np.ndarray) -> np.ndarray:
        return self.weights_[items].copy()
