"""Per-customer purchase summary that the BG/NBD and Gamma-Gamma models are fitted on.

The models do not look at individual orders, only at three numbers per customer (Fader, Hardie
and Lee 2005), plus a fourth for spend (Fader and Hardie 2013):

* ``frequency`` (x): the number of *repeat* purchase days. The first purchase is how the customer
  joined and says nothing about their repeat behaviour, so it is not counted; several orders on
  the same day count once, because the models describe a customer's decisions to come back, and a
  basket split into two orders is still one visit.
* ``recency`` (t_x): time from the first purchase to the last one, 0 for a customer who never came
  back. Beware: this is *not* the RFM recency (time since the last purchase), it is the age of the
  customer at their last purchase. The models need both t_x and T to infer how likely it is that a
  silent customer has left.
* ``age`` (T): time from the first purchase to the end of the observation period.
* ``mean_repeat_spend`` (z-bar): the mean value of the repeat purchase days (a day's orders
  summed), 0 without repeats. The first purchase is left out for the same reason as above, and
  because Gamma-Gamma is fitted on the same repeat purchases that BG/NBD counts.

Time is measured in whole days (the date of each order) and then expressed in the chosen unit, so
the summary is the same whatever time of day customers bought. Convert timestamps to the shop's
local dates before calling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from segments.analytics.errors import CustomerDataError

TimeUnit = Literal["days", "weeks", "months"]

#: Length of each time unit in days. A month is the mean Gregorian month so that a year is 12 of
#: them exactly; it is used to express monthly discount rates in the model's own time unit.
DAYS_PER_UNIT: dict[str, float] = {"days": 1.0, "weeks": 7.0, "months": 365.25 / 12.0}


def days_per_unit(time_unit: str) -> float:
    try:
        return DAYS_PER_UNIT[time_unit]
    except KeyError:
        raise CustomerDataError(
            f"unknown time unit {time_unit!r}; choose one of {', '.join(DAYS_PER_UNIT)}"
        ) from None


@dataclass(frozen=True, eq=False)
class CustomerSummary:
    """One row per customer whose first purchase falls on or before ``observation_end``.

    Arrays are aligned with ``customer_ids`` (sorted ascending).
    """

    customer_ids: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    age: np.ndarray
    mean_repeat_spend: np.ndarray
    time_unit: str
    observation_end: np.datetime64

    def __len__(self) -> int:
        return int(self.customer_ids.shape[0])


def _as_days(values: ArrayLike, what: str) -> np.ndarray:
    try:
        days = np.asarray(values, dtype="datetime64[D]")
    except (TypeError, ValueError) as exc:
        raise CustomerDataError(
            f"{what} must be dates (datetime64, date objects or ISO strings): {exc}"
        ) from exc
    if np.isnat(days).any():
        raise CustomerDataError(f"{what} contains missing dates")
    return days


def build_customer_summary(
    customer_ids: ArrayLike,
    purchase_dates: ArrayLike,
    amounts: ArrayLike,
    *,
    observation_end: object,
    time_unit: TimeUnit = "weeks",
) -> CustomerSummary:
    """Summarise order lines (one entry per order or order line) into the models' inputs.

    Orders after ``observation_end`` are ignored, which is how a calibration period is cut out of a
    longer history to check predictions against the holdout that follows. ``observation_end`` is
    inclusive: a customer whose first purchase is that very day has ``age`` 0.

    Amounts must be non-negative: refunds should be netted into their order before summarising,
    because a negative "purchase" is not a visit and the spend model is defined on positive values.
    """
    unit_days = days_per_unit(time_unit)
    ids = np.asarray(customer_ids)
    days = _as_days(purchase_dates, "purchase_dates")
    spend = np.asarray(amounts, dtype=np.float64)
    if ids.ndim != 1 or days.ndim != 1 or spend.ndim != 1:
        raise CustomerDataError("customer_ids, purchase_dates and amounts must be one-dimensional")
    if not (ids.shape[0] == days.shape[0] == spend.shape[0]):
        raise CustomerDataError(
            f"customer_ids, purchase_dates and amounts differ in length "
            f"({ids.shape[0]}, {days.shape[0]}, {spend.shape[0]})"
        )
    if not np.isfinite(spend).all():
        raise CustomerDataError("amounts contains missing or infinite values")
    if (spend < 0).any():
        raise CustomerDataError(
            f"amounts contains {int((spend < 0).sum())} negative values; net refunds into their orders first"
        )
    end = _as_days([observation_end], "observation_end")[0]

    in_period = days <= end
    ids, days, spend = ids[in_period], days[in_period], spend[in_period]
    unique_ids, customer_index = np.unique(ids, return_inverse=True)
    n_customers = unique_ids.shape[0]
    if n_customers == 0:
        empty_f = np.zeros(0)
        return CustomerSummary(
            unique_ids, np.zeros(0, dtype=np.int64), empty_f, empty_f, empty_f, time_unit, end
        )

    # Collapse orders to purchase days: sort by (customer, day), then mark where a new day starts.
    day_number = days.astype(np.int64)
    order = np.lexsort((day_number, customer_index))
    customer_index, day_number, spend = customer_index[order], day_number[order], spend[order]
    new_day = np.ones(customer_index.shape[0], dtype=bool)
    new_day[1:] = (customer_index[1:] != customer_index[:-1]) | (day_number[1:] != day_number[:-1])
    day_starts = np.flatnonzero(new_day)
    day_customer = customer_index[day_starts]
    day_value = np.add.reduceat(spend, day_starts)
    day_of_purchase = day_number[day_starts]

    # Purchase days are sorted within each customer, so the first and last day of a customer are at
    # the first and last of their runs.
    first_of_customer = np.ones(day_customer.shape[0], dtype=bool)
    first_of_customer[1:] = day_customer[1:] != day_customer[:-1]
    starts = np.flatnonzero(first_of_customer)
    ends = np.append(starts[1:], day_customer.shape[0]) - 1
    purchase_days = np.diff(np.append(starts, day_customer.shape[0]))
    first_day = day_of_purchase[starts]
    last_day = day_of_purchase[ends]

    frequency = (purchase_days - 1).astype(np.int64)
    recency = (last_day - first_day) / unit_days
    age = (end.astype(np.int64) - first_day) / unit_days
    total_value = np.add.reduceat(day_value, starts)
    repeat_value = total_value - day_value[starts]
    mean_repeat_spend = np.divide(repeat_value, frequency, out=np.zeros(n_customers), where=frequency > 0)
    return CustomerSummary(
        customer_ids=unique_ids,
        frequency=frequency,
        recency=recency.astype(np.float64),
        age=age.astype(np.float64),
        mean_repeat_spend=mean_repeat_spend,
        time_unit=time_unit,
        observation_end=end,
    )
