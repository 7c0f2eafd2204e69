import sqlite3
from itertools import product

import numpy as np
import pytest

from segments.analytics.errors import CustomerDataError
from segments.analytics.rfm import (
    DEFAULT_GROUP_DESCRIPTIONS,
    DEFAULT_RFM_MAPPING,
    RFMMapping,
    RFMMappingError,
    RFMRule,
    quintile_scores,
)

GROUPS = (
    "Champions",
    "Loyal",
    "Potential loyalists",
    "New",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Can't lose them",
    "Hibernating",
    "Lost",
)
ALL_CELLS = list(product(range(1, 6), repeat=3))


# -- named groups ------------------------------------------------------------------------------


def test_default_mapping_gives_every_one_of_the_125_cells_exactly_one_group():
    grid = DEFAULT_RFM_MAPPING.grid()
    assert sorted(grid) == ALL_CELLS
    assert DEFAULT_RFM_MAPPING.overlapping_cells() == []
    assert set(grid.values()) == set(GROUPS)
    assert DEFAULT_RFM_MAPPING.groups == GROUPS
    assert set(DEFAULT_GROUP_DESCRIPTIONS) == set(GROUPS)


def test_default_mapping_counts_each_cell_once_by_brute_force():
    for r, f, m in ALL_CELLS:
        fm = (f + m) / 2
        matching = [
            rule.group
            for rule in DEFAULT_RFM_MAPPING.rules
            if rule.recency[0] <= r <= rule.recency[1] and rule.value[0] <= fm <= rule.value[1]
        ]
        assert len(matching) == 1, (r, f, m, matching)
        assert DEFAULT_RFM_MAPPING.group_of(r, f, m) == matching[0]


@pytest.mark.parametrize(
    ("scores", "group"),
    [
        ((5, 5, 5), "Champions"),
        ((5, 4, 4), "Champions"),
        ((4, 5, 5), "Loyal"),
        ((5, 3, 3), "Potential loyalists"),
        ((5, 1, 1), "New"),
        ((4, 1, 2), "Promising"),
        ((3, 3, 3), "Need attention"),
        ((3, 2, 2), "About to sleep"),
        ((2, 3, 4), "At risk"),
        ((1, 5, 5), "Can't lose them"),
        ((2, 4, 4), "Can't lose them"),
        ((2, 1, 2), "Hibernating"),
        ((1, 1, 1), "Lost"),
        ((1, 2, 3), "Lost"),
    ],
)
def test_default_groups_read_as_a_marketer_expects(scores, group):
    assert DEFAULT_RFM_MAPPING.group_of(*scores) == group


def test_assign_maps_aligned_score_arrays():
    groups = DEFAULT_RFM_MAPPING.assign([5, 1, 3], [5, 1, 3], [5, 1, 3])
    np.testing.assert_array_equal(groups, ["Champions", "Lost", "Need attention"])
    assert DEFAULT_RFM_MAPPING.assign([], [], []).shape == (0,)


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        (([0], [1], [1]), "recency scores"),
        (([1], [6], [1]), "frequency scores"),
        (([1], [1], [2.5]), "monetary scores"),
        (([1], [1], ["x"]), "monetary scores"),
        (([1, 2], [1, 2, 3], [1]), "differ in shape"),
    ],
)
def test_assign_rejects_scores_outside_one_to_five(scores, message):
    with pytest.raises(CustomerDataError, match=message):
        DEFAULT_RFM_MAPPING.assign(*scores)


def test_first_matching_rule_wins():
    vip_first = RFMMapping(
        rules=(
            RFMRule("VIP", recency=(5, 5), value=(5, 5)),
            RFMRule("Everyone else", recency=(1, 5), value=(1, 5)),
        )
    )
    assert vip_first.group_of(5, 5, 5) == "VIP"
    assert vip_first.group_of(5, 5, 4) == "Everyone else"
    assert vip_first.overlapping_cells() == [(5, 5, 5)]


def test_a_rule_shadowed_by_earlier_rules_is_refused():
    with pytest.raises(RFMMappingError, match=r"rule 2 \(VIP.*never applies"):
        RFMMapping(
            rules=(
                RFMRule("Everyone", recency=(1, 5), value=(1, 5)),
                RFMRule("VIP", recency=(5, 5), value=(5, 5)),
            )
        )


def test_a_range_that_contains_no_score_is_refused():
    # FM moves in half steps, so 2.1-2.4 matches nothing.
    with pytest.raises(RFMMappingError, match="never applies"):
        RFMMapping(
            rules=(
                RFMRule("Odd", recency=(1, 5), value=(2.1, 2.4)),
                RFMRule("Everyone", recency=(1, 5), value=(1, 5)),
            )
        )


def test_uncovered_cells_are_listed():
    with pytest.raises(RFMMappingError, match=r"25 score combinations have no group: R1F1M1, R1F1M2"):
        RFMMapping(rules=(RFMRule("Recent", recency=(2, 5), value=(1, 5)),))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (RFMRule("", recency=(1, 5), value=(1, 5)), "no group name"),
        (RFMRule("Backwards", recency=(5, 1), value=(1, 5)), "low <= high"),
        (RFMRule("Too high", recency=(1, 6), value=(1, 5)), "low <= high"),
        (RFMRule("Not a number", recency=(1, 5), value=("1", 5)), "must be numbers"),
    ],
)
def test_malformed_rules_are_refused(rule, message):
    with pytest.raises(RFMMappingError, match=message):
        RFMMapping(rules=(rule, RFMRule("Everyone", recency=(1, 5), value=(1, 5))))


def test_table_round_trip_and_frequency_only_mapping():
    rows = DEFAULT_RFM_MAPPING.as_table()
    assert RFMMapping.from_table(rows) == DEFAULT_RFM_MAPPING
    assert rows[0] == {"group": "Champions", "recency": [5, 5], "value": [4, 5]}

    by_frequency = RFMMapping.from_table(
        [
            {"group": "Frequent", "recency": [1, 5], "value": [4, 5]},
            {"group": "Occasional", "recency": [1, 5], "value": [1, 3]},
        ],
        value_score="frequency",
    )
    # Monetary is ignored: F decides.
    assert by_frequency.group_of(3, 4, 1) == "Frequent"
    assert by_frequency.group_of(3, 3, 5) == "Occasional"


@pytest.mark.parametrize(
    "rows",
    [
        [{"group": "No ranges"}],
        [{"group": "Bad", "recency": [1, 2, 3], "value": [1, 5]}],
        [{"group": "Bad", "recency": 5, "value": [1, 5]}],
    ],
)
def test_malformed_table_rows_are_refused(rows):
    with pytest.raises(RFMMappingError):
        RFMMapping.from_table(rows)


def test_unknown_value_score_is_refused():
    with pytest.raises(RFMMappingError, match="value_score"):
        RFMMapping(rules=DEFAULT_RFM_MAPPING.rules, value_score="monetary")  # type: ignore[arg-type]


# -- quintile scores ---------------------------------------------------------------------------


def _ntile_by_definition(values, ids, tiles, descending):
    """NTILE as the SQL standard defines it, row by row: deal the ordered rows into `tiles`
    buckets, the first N mod tiles buckets one row larger than the others."""
    order = sorted(range(len(values)), key=lambda i: ((-values[i] if descending else values[i]), ids[i]))
    base, larger = divmod(len(values), tiles)
    scores = [0] * len(values)
    position = 0
    for bucket in range(1, tiles + 1):
        for _ in range(base + (1 if bucket <= larger else 0)):
            scores[order[position]] = bucket
            position += 1
    return scores


def _ntile_in_sqlite(values, ids, tiles, descending, same_score):
    direction = "DESC" if descending else "ASC"
    ntile = f"NTILE({tiles}) OVER (ORDER BY value {direction}, id ASC)"
    if same_score:
        query = f"SELECT id, MIN(score) OVER (PARTITION BY value) FROM (SELECT id, value, {ntile} AS score FROM c)"
    else:
        query = f"SELECT id, {ntile} FROM c"
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, value REAL)")
        db.executemany("INSERT INTO c VALUES (?, ?)", zip(ids.tolist(), values.tolist(), strict=True))
        rows = dict(db.execute(query).fetchall())
    return [rows[i] for i in ids.tolist()]


CASES = [
    (n, spread, tiles)
    for n in (0, 1, 3, 4, 5, 7, 11, 24, 101, 1003)
    for spread in (3, 1000)
    for tiles in (5, 4)
]


@pytest.mark.parametrize(("n", "spread", "tiles"), CASES)
@pytest.mark.parametrize("descending", [False, True])
def test_quintiles_match_ntile_by_definition_and_in_sql(n, spread, tiles, descending):
    rng = np.random.default_rng(n * 7 + spread + tiles)
    # Few distinct values (spread 3) means heavy ties, which only the tiebreak can order.
    values = rng.integers(0, spread, size=n).astype(float)
    ids = rng.permutation(np.arange(10_000, 10_000 + 3 * n, 3))
    scores = quintile_scores(values, tiebreak=ids, descending=descending, tiles=tiles)
    assert scores.tolist() == _ntile_by_definition(values.tolist(), ids.tolist(), tiles, descending)
    assert scores.tolist() == _ntile_in_sqlite(values, ids, tiles, descending, same_score=False)


@pytest.mark.parametrize(("n", "spread", "tiles"), CASES)
def test_shared_scores_for_ties_match_sql(n, spread, tiles):
    rng = np.random.default_rng(n + spread)
    values = rng.integers(0, spread, size=n).astype(float)
    ids = rng.permutation(n)
    for descending in (False, True):
        scores = quintile_scores(values, tiebreak=ids, descending=descending, tiles=tiles, ties="same_score")
        assert scores.tolist() == _ntile_in_sqlite(values, ids, tiles, descending, same_score=True)
        # Equal values, equal score.
        for value in np.unique(values):
            assert np.unique(scores[values == value]).shape[0] == 1


def test_quintiles_of_distinct_values_split_evenly_and_follow_the_order():
    values = np.arange(100.0)[::-1]
    scores = quintile_scores(values)
    np.testing.assert_array_equal(np.bincount(scores)[1:], [20] * 5)
    assert scores[values.argmax()] == 5
    recent_is_best = quintile_scores(values, descending=True)
    assert recent_is_best[values.argmin()] == 5


def test_without_a_tiebreak_the_input_order_breaks_ties():
    np.testing.assert_array_equal(quintile_scores([1, 1, 1, 1, 1]), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(quintile_scores([7, 7, 7]), [1, 2, 3])


def test_dates_are_scored_too():
    dates = np.array(
        ["2024-03-01", "2024-01-01", "2024-02-01", "2024-05-01", "2024-04-01"], dtype="datetime64[D]"
    )
    np.testing.assert_array_equal(quintile_scores(dates), [3, 1, 2, 5, 4])


@pytest.mark.parametrize(
    ("values", "options", "message"),
    [
        ([1.0, float("nan")], {}, "missing"),
        ([[1, 2]], {}, "one-dimensional"),
        ([1, 2], {"tiebreak": [1, 1]}, "unique"),
        ([1, 2], {"tiebreak": [1]}, "aligned"),
        ([1, 2], {"tiles": 0}, "at least 1"),
        ([1, 2], {"ties": "average"}, "ties"),
    ],
)
def test_quintile_input_errors(values, options, message):
    with pytest.raises(CustomerDataError, match=message):
        quintile_scores(values, **options)
