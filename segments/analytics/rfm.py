"""RFM scores and the named customer groups marketers know them by.

Each customer gets three scores from 1 to 5: recency (5 = bought most recently), frequency
(5 = orders most often) and monetary value (5 = spends most). 125 combinations are too many to run
campaigns on, so they are mapped onto a few named groups (Champions, At risk, ...).

The mapping is data, not code: an ordered table of rules, each a rectangle on the recency score and
on the value score. The value score is by default FM = (F + M) / 2, which moves in half steps (a
customer with F = 5 and M = 2 has FM = 3.5): frequency and spend usually tell the same story, and
averaging them keeps the table two-dimensional so that it can be drawn as a grid. A mapping can
use F alone instead. **The first rule that matches wins**, so a custom table may carve an
exception out of a broad rule by listing it first. A mapping is checked when it is built: every
one of the 125 score combinations must be matched by some rule, and every rule must win at least
one combination (a rule that never wins is almost always a typo).

The default table follows the widely used RFM grid. It happens to be a partition (no overlaps), so
it reads the same in any order:

==================== ========= =========
group                recency   FM
==================== ========= =========
Champions            5         4 - 5
Loyal                3 - 4     4 - 5
Potential loyalists  4 - 5     2 - 3.5
New                  5         1 - 1.5
Promising            4         1 - 1.5
Need attention       3         3 - 3.5
About to sleep       3         1 - 2.5
At risk              1 - 2     3 - 3.5
Can't lose them      1 - 2     4 - 5
Hibernating          2         1 - 2.5
Lost                 1         1 - 2.5
==================== ========= =========

Scores are computed in SQL on the database side with ``NTILE(5)``; :func:`quintile_scores` is the
numpy reference of exactly that computation, used in tests and in notebooks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from segments.analytics.errors import CustomerDataError

ValueScore = Literal["frequency_monetary", "frequency"]
TieRule = Literal["ntile", "same_score"]

SCORES = (1, 2, 3, 4, 5)


class RFMMappingError(ValueError):
    """A custom RFM mapping leaves score combinations without a group, or has rules that never win."""


@dataclass(frozen=True)
class RFMRule:
    """Customers whose recency score and value score both fall in these inclusive ranges."""

    group: str
    recency: tuple[int, int]
    value: tuple[float, float]

    def matches(self, recency: np.ndarray, value: np.ndarray) -> np.ndarray:
        return (
            (recency >= self.recency[0])
            & (recency <= self.recency[1])
            & (value >= self.value[0])
            & (value <= self.value[1])
        )


def _value_score(frequency: np.ndarray, monetary: np.ndarray, kind: ValueScore) -> np.ndarray:
    if kind == "frequency":
        return frequency.astype(np.float64)
    return (frequency + monetary) / 2.0


@dataclass(frozen=True)
class RFMMapping:
    """An ordered, validated table of rules from (R, F, M) scores to named groups."""

    rules: tuple[RFMRule, ...]
    value_score: ValueScore = "frequency_monetary"
    # Group index of every (R, F, M) cell, indexed [R-1, F-1, M-1]; filled in by validation.
    _cell_rule: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.value_score not in ("frequency_monetary", "frequency"):
            raise RFMMappingError(
                f"value_score must be 'frequency_monetary' or 'frequency', not {self.value_score!r}"
            )
        if not self.rules:
            raise RFMMappingError("an RFM mapping needs at least one rule")
        for number, rule in enumerate(self.rules, start=1):
            _check_rule(number, rule)
        r, f, m = np.meshgrid(SCORES, SCORES, SCORES, indexing="ij")
        value = _value_score(f, m, self.value_score)
        cell_rule = np.full(r.shape, -1, dtype=np.int64)
        for index, rule in enumerate(self.rules):
            claims = rule.matches(r, value) & (cell_rule < 0)
            if not claims.any():
                raise RFMMappingError(
                    f"rule {index + 1} ({rule.group}: recency {_span(rule.recency)}, value {_span(rule.value)}) "
                    "never applies: every score combination it covers is taken by an earlier rule or "
                    "its ranges contain no possible score"
                )
            cell_rule[claims] = index
        uncovered = np.argwhere(cell_rule < 0) + 1
        if uncovered.size:
            cells = ", ".join(f"R{a}F{b}M{c}" for a, b, c in uncovered[:10])
            more = f" and {len(uncovered) - 10} more" if len(uncovered) > 10 else ""
            raise RFMMappingError(f"{len(uncovered)} score combinations have no group: {cells}{more}")
        object.__setattr__(self, "_cell_rule", cell_rule)

    @classmethod
    def from_table(
        cls, rows: Iterable[Mapping[str, object]], *, value_score: ValueScore = "frequency_monetary"
    ) -> RFMMapping:
        """Build a mapping from plain rows as stored in JSON settings.

        Each row: ``{"group": "Champions", "recency": [5, 5], "value": [4, 5]}``.
        """
        rules = []
        for number, row in enumerate(rows, start=1):
            try:
                group = row["group"]
                recency = tuple(row["recency"])  # type: ignore[arg-type]
                value = tuple(row["value"])  # type: ignore[arg-type]
            except (KeyError, TypeError) as exc:
                raise RFMMappingError(
                    f"rule {number} must have 'group', 'recency' [low, high] and 'value' [low, high]: {exc}"
                ) from exc
            if len(recency) != 2 or len(value) != 2:
                raise RFMMappingError(f"rule {number}: 'recency' and 'value' must be [low, high] pairs")
            rules.append(RFMRule(group=group, recency=recency, value=value))  # type: ignore[arg-type]
        return cls(rules=tuple(rules), value_score=value_score)

    def as_table(self) -> list[dict[str, object]]:
        """The rules as plain rows (the inverse of :meth:`from_table`)."""
        return [
            {"group": rule.group, "recency": list(rule.recency), "value": list(rule.value)}
            for rule in self.rules
        ]

    @property
    def groups(self) -> tuple[str, ...]:
        """Distinct group names, in the order of their first rule."""
        return tuple(dict.fromkeys(rule.group for rule in self.rules))

    def group_of(self, recency: int, frequency: int, monetary: int) -> str:
        return str(self.assign([recency], [frequency], [monetary])[0])

    def assign(self, recency: ArrayLike, frequency: ArrayLike, monetary: ArrayLike) -> np.ndarray:
        """Group name of every customer, from their three scores (aligned arrays of 1-5)."""
        scores = [
            _check_scores(name, values)
            for name, values in (("recency", recency), ("frequency", frequency), ("monetary", monetary))
        ]
        try:
            r, f, m = np.broadcast_arrays(*scores)
        except ValueError as exc:
            raise CustomerDataError(f"recency, frequency and monetary scores differ in shape: {exc}") from exc
        names = np.array([rule.group for rule in self.rules])
        return names[self._cell_rule[r - 1, f - 1, m - 1]]

    def grid(self) -> dict[tuple[int, int, int], str]:
        """Group of each of the 125 (R, F, M) score combinations."""
        return {
            (r, f, m): self.rules[int(self._cell_rule[r - 1, f - 1, m - 1])].group
            for r in SCORES
            for f in SCORES
            for m in SCORES
        }

    def overlapping_cells(self) -> list[tuple[int, int, int]]:
        """Score combinations matched by more than one rule (resolved by rule order)."""
        r, f, m = np.meshgrid(SCORES, SCORES, SCORES, indexing="ij")
        value = _value_score(f, m, self.value_score)
        hits = sum(rule.matches(r, value).astype(np.int64) for rule in self.rules)
        return [tuple(int(s) for s in cell + 1) for cell in np.argwhere(hits > 1)]  # type: ignore[misc]


def _span(bounds: tuple[float, float]) -> str:
    low, high = bounds
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def _check_rule(number: int, rule: RFMRule) -> None:
    if not isinstance(rule.group, str) or not rule.group.strip():
        raise RFMMappingError(f"rule {number} has no group name")
    for axis, (low, high) in (("recency", rule.recency), ("value", rule.value)):
        if not all(isinstance(bound, int | float) and not isinstance(bound, bool) for bound in (low, high)):
            raise RFMMappingError(f"rule {number} ({rule.group}): {axis} bounds must be numbers")
        if not (1 <= low <= high <= 5):
            raise RFMMappingError(
                f"rule {number} ({rule.group}): {axis} range {low}-{high} must satisfy 1 <= low <= high <= 5"
            )


def _check_scores(name: str, values: ArrayLike) -> np.ndarray:
    scores = np.asarray(values)
    if scores.dtype.kind == "f":
        if not np.isfinite(scores).all() or (scores != np.round(scores)).any():
            raise CustomerDataError(f"{name} scores must be whole numbers from 1 to 5")
        scores = scores.astype(np.int64)
    elif scores.dtype.kind not in "iu":
        raise CustomerDataError(f"{name} scores must be whole numbers from 1 to 5")
    if scores.size and (scores.min() < 1 or scores.max() > 5):
        raise CustomerDataError(f"{name} scores must be whole numbers from 1 to 5")
    return scores.astype(np.int64)


DEFAULT_RFM_RULES: tuple[RFMRule, ...] = (
    RFMRule("Champions", recency=(5, 5), value=(4, 5)),
    RFMRule("Loyal", recency=(3, 4), value=(4, 5)),
    RFMRule("Potential loyalists", recency=(4, 5), value=(2, 3.5)),
    RFMRule("New", recency=(5, 5), value=(1, 1.5)),
    RFMRule("Promising", recency=(4, 4), value=(1, 1.5)),
    RFMRule("Need attention", recency=(3, 3), value=(3, 3.5)),
    RFMRule("About to sleep", recency=(3, 3), value=(1, 2.5)),
    RFMRule("At risk", recency=(1, 2), value=(3, 3.5)),
    RFMRule("Can't lose them", recency=(1, 2), value=(4, 5)),
    RFMRule("Hibernating", recency=(2, 2), value=(1, 2.5)),
    RFMRule("Lost", recency=(1, 1), value=(1, 2.5)),
)

#: What each default group means and what to do about it, for the admin and the docs.
DEFAULT_GROUP_DESCRIPTIONS: dict[str, str] = {
    "Champions": "Bought recently, buy often and spend the most. Reward them; ask for reviews.",
    "Loyal": "Buy often and spend well, if not in the last few weeks. Upsell, loyalty perks.",
    "Potential loyalists": "Recent customers with average frequency and spend. Offer membership.",
    "New": "Bought very recently, for the first time or little. Onboard them well.",
    "Promising": "Recent, but low frequency and spend so far. Build the habit.",
    "Need attention": "Average recency, frequency and spend. Limited-time offers.",
    "About to sleep": "Below-average recency and value. Reactivate before they drift away.",
    "At risk": "Used to buy often and spend well, but not for a long time. Win them back.",
    "Can't lose them": "Among the best customers by frequency and spend, but gone quiet. Reach out now.",
    "Hibernating": "Low value and not seen for a while. Cheap reminders, or let them rest.",
    "Lost": "Lowest recency and value. Leave them out of most campaigns.",
}

DEFAULT_RFM_MAPPING = RFMMapping(rules=DEFAULT_RFM_RULES)


def quintile_scores(
    values: ArrayLike,
    *,
    tiebreak: ArrayLike | None = None,
    descending: bool = False,
    tiles: int = 5,
    ties: TieRule = "ntile",
) -> np.ndarray:
    """Scores 1..``tiles`` exactly as SQL ``NTILE`` assigns them; the reference for the SQL side.

    With ``ties="ntile"`` the result equals, per customer::

        NTILE(5) OVER (ORDER BY value [DESC], tiebreak ASC)

    ``NTILE`` deals rows out in order into ``tiles`` buckets whose sizes differ by at most one,
    the larger buckets first. Equal values can therefore straddle a boundary; the ``tiebreak``
    (the customer id, which must be unique) decides who goes first so the answer is
    deterministic and identical in SQL and here. Without a tiebreak, the input order is used.

    With ``ties="same_score"`` customers with equal values share the score of the first of them,
    as ``MIN(NTILE(5) OVER (...)) OVER (PARTITION BY value)`` would give: two customers with the
    same order count then always get the same F score, at the price of uneven bucket sizes.

    Use ``descending=True`` where a lower value is better, such as days since the last order for
    the recency score (the most recent customers get 5).
    """
    data = np.asarray(values)
    if data.ndim != 1:
        raise CustomerDataError("values must be one-dimensional")
    if tiles < 1:
        raise CustomerDataError("tiles must be at least 1")
    if ties not in ("ntile", "same_score"):
        raise CustomerDataError(f"ties must be 'ntile' or 'same_score', not {ties!r}")
    if data.dtype.kind in "fc" and np.isnan(data).any():
        raise CustomerDataError("values contains missing values; SQL and numpy order them differently")
    if data.dtype.kind == "M" and np.isnat(data).any():
        raise CustomerDataError("values contains missing dates")
    n = data.shape[0]
    if tiebreak is None:
        breaker = np.arange(n)
    else:
        breaker = np.asarray(tiebreak)
        if breaker.shape != data.shape:
            raise CustomerDataError("tiebreak must be aligned with values")
        if np.unique(breaker).shape[0] != n:
            raise CustomerDataError("tiebreak must be unique (use the customer id)")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # Dense ranks order any sortable dtype (numbers, dates, strings) and can be negated for DESC.
    _, rank = np.unique(data, return_inverse=True)
    primary = -rank if descending else rank
    order = np.lexsort((breaker, primary))
    position = np.arange(n)
    base, larger = divmod(n, tiles)
    # The first `larger` tiles hold base + 1 rows each, the rest hold base rows.
    boundary = larger * (base + 1)
    tile = np.where(
        position < boundary,
        position // (base + 1),
        larger + (position - boundary) // max(base, 1),
    )
    scores = np.empty(n, dtype=np.int64)
    scores[order] = tile + 1
    if ties == "same_score":
        lowest = np.full(rank.max() + 1, tiles + 1, dtype=np.int64)
        np.minimum.at(lowest, rank, scores)
        scores = lowest[rank]
    return scores
