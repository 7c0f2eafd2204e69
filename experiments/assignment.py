"""Which variant a customer gets, decided by a hash so that it never changes and needs no storage.

A customer must see the same variant every time an experiment sends (or a re-run after a crash
would mix the arms), different experiments must split customers independently (or one test's
winner would be confounded with another's), and the split must follow the configured weights. A
stable hash of (experiment salt, customer id) gives all three without a lookup table: the same
inputs always land in the same place, and a different salt reshuffles everyone.

The recipe is fixed so that other code (a SQL query, a script) can reproduce it:

    digest = SHA-256(UTF-8(salt) + 0x00 + UTF-8(str(customer_id)))
    point  = (first 8 bytes of digest, big-endian) >> 11, divided by 2**53   # uniform in [0, 1)

and the customer goes to the first variant whose cumulative share of the weights exceeds the point.
Changing this recipe reassigns every customer of every running experiment.

The global holdout (customers who receive no campaigns at all, to measure the total lift of
marketing) uses the same point with its own salt, so holding out is independent of every
experiment's split.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Sequence
from itertools import accumulate

GLOBAL_HOLDOUT_SALT = "global-holdout"
_POINT_BITS = 53


def assignment_point(salt: str, customer_id: str | int) -> float:
    """The customer's fixed position in [0, 1) for this salt."""
    if "\x00" in salt:
        raise ValueError("salt must not contain a NUL character (it separates salt and customer id)")
    digest = hashlib.sha256(salt.encode("utf-8") + b"\x00" + str(customer_id).encode("utf-8")).digest()
    top = int.from_bytes(digest[:8], "big") >> (64 - _POINT_BITS)
    return top / 2**_POINT_BITS


def _cumulative_shares(weights: Sequence[float]) -> list[float]:
    if len(weights) < 1:
        raise ValueError("at least one weight is needed")
    for weight in weights:
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"weights must be numbers, got {weight!r}")
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"weights must be positive finite numbers, got {weight!r}")
    total = math.fsum(weights)
    return [running / total for running in accumulate(weights)]


def assign_variant(salt: str, customer_id: str | int, weights: Sequence[float]) -> int:
    """Index of the variant (in the order of ``weights``) this customer belongs to."""
    shares = _cumulative_shares(weights)
    index = bisect.bisect_right(shares, assignment_point(salt, customer_id))
    # Rounding can leave the last cumulative share a hair below 1.
    return min(index, len(weights) - 1)


def assign_variants(salt: str, customer_ids: Iterable[str | int], weights: Sequence[float]) -> list[int]:
    """assign_variant for many customers, checking the weights once."""
    shares = _cumulative_shares(weights)
    last = len(weights) - 1
    return [min(bisect.bisect_right(shares, assignment_point(salt, cid)), last) for cid in customer_ids]


def in_global_holdout(customer_id: str | int, *, share: float, salt: str = GLOBAL_HOLDOUT_SALT) -> bool:
    """Whether this customer is in the global holdout that receives no campaigns."""
    if not 0 <= share < 1:
        raise ValueError(f"the holdout share must be at least 0 and below 1, got {share!r}")
    return assignment_point(salt, customer_id) < share
