import numpy as np
import pytest

from segments.analytics.errors import CustomerDataError
from segments.analytics.summary import build_customer_summary

from .conftest import CALIBRATION_END

# The published summary is rounded to two decimals.
ROUNDING = 0.005 + 1e-9


def test_cdnow_summary_is_reproduced_from_the_transactions(cdnow_transactions, cdnow_summary):
    ids, dates, amounts = cdnow_transactions
    summary = build_customer_summary(ids, dates, amounts, observation_end=CALIBRATION_END, time_unit="weeks")

    assert len(summary) == 2357
    np.testing.assert_array_equal(summary.customer_ids, cdnow_summary[:, 0].astype(np.int64))
    np.testing.assert_array_equal(summary.frequency, cdnow_summary[:, 1])
    np.testing.assert_allclose(summary.recency, cdnow_summary[:, 2], rtol=0, atol=ROUNDING)
    np.testing.assert_allclose(summary.age, cdnow_summary[:, 3], rtol=0, atol=ROUNDING)
    np.testing.assert_allclose(summary.mean_repeat_spend, cdnow_summary[:, 4], rtol=0, atol=ROUNDING)
    assert int((summary.frequency > 0).sum()) == 946


def test_same_day_orders_are_one_purchase_and_the_first_is_not_a_repeat():
    summary = build_customer_summary(
        ["ann", "ann", "ann", "ann", "bob"],
        ["2024-01-01", "2024-01-01", "2024-01-08", "2024-01-08", "2024-01-15"],
        [10.0, 5.0, 20.0, 2.0, 7.0],
        observation_end="2024-01-15",
        time_unit="days",
    )
    np.testing.assert_array_equal(summary.customer_ids, ["ann", "bob"])
    np.testing.assert_array_equal(summary.frequency, [1, 0])
    np.testing.assert_array_equal(summary.recency, [7.0, 0.0])
    np.testing.assert_array_equal(summary.age, [14.0, 0.0])
    # Ann's repeat day (the 8th) is worth 22; her first day's 15 is left out. Bob has no repeats.
    np.testing.assert_array_equal(summary.mean_repeat_spend, [22.0, 0.0])


def test_orders_after_the_observation_end_are_ignored_whatever_their_order():
    ids = [2, 1, 1, 2, 1, 3]
    dates = ["2024-03-01", "2024-01-20", "2024-01-01", "2024-01-05", "2024-02-10", "2024-04-01"]
    amounts = [1.0, 3.0, 2.0, 4.0, 9.0, 5.0]
    summary = build_customer_summary(ids, dates, amounts, observation_end="2024-01-31", time_unit="weeks")
    np.testing.assert_array_equal(summary.customer_ids, [1, 2])
    np.testing.assert_array_equal(summary.frequency, [1, 0])
    np.testing.assert_allclose(summary.recency, [19 / 7, 0.0])
    np.testing.assert_allclose(summary.age, [30 / 7, 26 / 7])
    np.testing.assert_array_equal(summary.mean_repeat_spend, [3.0, 0.0])


def test_time_unit_only_rescales(cdnow_transactions):
    ids, dates, amounts = cdnow_transactions
    weeks = build_customer_summary(ids, dates, amounts, observation_end=CALIBRATION_END, time_unit="weeks")
    days = build_customer_summary(ids, dates, amounts, observation_end=CALIBRATION_END, time_unit="days")
    np.testing.assert_allclose(days.recency, weeks.recency * 7)
    np.testing.assert_allclose(days.age, weeks.age * 7)
    np.testing.assert_array_equal(days.frequency, weeks.frequency)
    assert days.age.max() == 272  # 1997-01-01 to 1997-09-30


def test_no_orders_in_the_period_gives_an_empty_summary():
    summary = build_customer_summary([1], ["2024-05-01"], [3.0], observation_end="2024-01-01")
    assert len(summary) == 0


@pytest.mark.parametrize(
    ("ids", "dates", "amounts", "message"),
    [
        ([1, 2], ["2024-01-01", "2024-01-02"], [1.0, -2.0], "negative"),
        ([1, 2], ["2024-01-01", "2024-01-02"], [1.0, float("nan")], "missing"),
        ([1, 2], ["2024-01-01", "NaT"], [1.0, 2.0], "missing dates"),
        ([1, 2], ["2024-01-01"], [1.0, 2.0], "differ in length"),
        ([1], ["not a date"], [1.0], "must be dates"),
    ],
)
def test_malformed_orders_are_rejected(ids, dates, amounts, message):
    with pytest.raises(CustomerDataError, match=message):
        build_customer_summary(ids, dates, amounts, observation_end="2024-12-31")


def test_unknown_time_unit_is_rejected():
    with pytest.raises(CustomerDataError, match="unknown time unit"):
        build_customer_summary(
            [1], ["2024-01-01"], [1.0], observation_end="2024-12-31", time_unit="fortnights"
        )
