"""Seasonality: when orders, signups and browsing happen (hour of day, day of week, day of year)."""

from __future__ import annotations

import numpy as np

from core.synthetic.config import US_PER_HOUR

# fmt: off
_HOUR_OF_DAY = np.array([0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.55, 0.8, 0.95, 1.05, 1.15,
                         1.3, 1.25, 1.1, 1.05, 1.05, 1.1, 1.25, 1.45, 1.55, 1.4, 1.0, 0.55])
# fmt: on
_DAY_OF_WEEK = np.array([1.0, 0.97, 0.98, 1.0, 1.02, 0.88, 1.12])  # Monday first


def yearly_profile(day_of_year: np.ndarray) -> np.ndarray:
    """Relative demand by day of year: a winter high, a summer lull, Black Friday and Christmas peaks."""
    d = np.asarray(day_of_year, dtype=float)
    wave = 1.0 + 0.18 * np.cos(2 * np.pi * (d - 350) / 365.25)
    black_friday = 0.9 * np.exp(-0.5 * ((d - 331) / 4.0) ** 2)
    christmas = 0.6 * np.exp(-0.5 * ((d - 348) / 7.0) ** 2)
    january_sale = 0.25 * np.exp(-0.5 * ((d - 4) / 4.0) ** 2)
    return wave + black_friday + christmas + january_sale


class _Season:
    """Cumulative demand on an hourly grid, so draws in a time window follow the seasonal curve.

    A uniform draw mapped through the inverse of the cumulative intensity gives a point of the
    inhomogeneous Poisson process; every order, signup and browsing session uses it.
    """

    PAD_HOURS = 24

    def __init__(self, start_us: int, days: int) -> None:
        hours = np.arange(-self.PAD_HOURS, days * 24 + self.PAD_HOURS, dtype=np.int64)
        moments = (start_us + hours * US_PER_HOUR).view("datetime64[us]")
        day = moments.astype("datetime64[D]")
        hour_of_day = ((moments - day) // np.timedelta64(1, "h")).astype(np.int64)
        day_of_week = (day.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        day_of_year = (day - day.astype("datetime64[Y]")).astype(np.int64)
        weight = _HOUR_OF_DAY[hour_of_day] * _DAY_OF_WEEK[day_of_week] * yearly_profile(day_of_year)
        self.edges = np.r_[hours, hours[-1] + 1].astype(float)
        self.cumulative = np.r_[0.0, np.cumsum(weight)]

    def sample(self, lo_hours: np.ndarray, hi_hours: np.ndarray, u: np.ndarray) -> np.ndarray:
        lo = np.interp(lo_hours, self.edges, self.cumulative)
        hi = np.interp(hi_hours, self.edges, self.cumulative)
        return np.interp(lo + u * (hi - lo), self.cumulative, self.edges)
