"""The shop's calendar: two years of days, month chunks and expected demand per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

DAYS = 730  # two years of complete days ending at end_date
WEEKDAY = np.array([1.06, 1.03, 1.0, 0.98, 0.95, 0.85, 1.10])  # Mon..Sun: weekend dip, Sunday peak
HOUR = 1 + 0.8 * np.cos(2 * np.pi * (np.arange(24) - 1) / 24)  # UTC; US evening peak ~01:00
OUTAGE_KEEP = 0.03  # share of orders that still get through a broken checkout
NEW_CUSTOMER_SHARE = 0.62


@dataclass
class Calendar:
    days: np.ndarray  # days since 1970-01-01
    month_bounds: list[tuple[int, int]]  # [start, stop) day indexes of each chunk
    demand: np.ndarray  # expected orders per day (no incident, no noise)
    counts: np.ndarray  # orders per day
    order_offset: np.ndarray  # global index of each month's first order
    new_customers: np.ndarray  # customers first seen in each month
    customer_offset: np.ndarray  # customer index of each month's first new customer
    outage_hour: int | None  # checkout breaks at this UTC hour on the last day

    @property
    def as_of(self) -> int:
        return int(self.days[-1])

    def hour_weights(self, last_day: bool) -> np.ndarray:
        w = HOUR.copy()
        if last_day and self.outage_hour is not None:
            w[self.outage_hour:] *= OUTAGE_KEEP
        return w / w.sum()


def _seasonality(days: np.ndarray) -> np.ndarray:
    d64 = days.astype("datetime64[D]")
    doy = (d64 - d64.astype("datetime64[Y]")).astype(int)
    # A broad winter high plus a sharp peak around Black Friday / Cyber Monday.
    dist = (doy - 333 + 182) % 365 - 182
    return 1 + 0.18 * np.cos(2 * np.pi * (doy - 350) / 365.25) + 0.45 * np.exp(-dist**2 / (2 * 12.0**2))


def build_calendar(rng: np.random.Generator, end: date, total_orders: int, incidents: bool,
                   order_keep: dict[int, float] | None = None) -> Calendar:
    """`order_keep` {day: share}: planted order drops (incidents.py), only that share of the
    day's orders goes through (at every hour of the day)."""
    end_day = (end - date(1970, 1, 1)).days
    days = np.arange(end_day - DAYS + 1, end_day + 1)
    t = (days - days[0]) / 365.25
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    shape = np.exp(0.35 * t) * _seasonality(days) * WEEKDAY[weekday]
    demand = shape * total_orders / shape.sum()
    counts = np.round(demand * rng.lognormal(0, 0.05, DAYS)).astype(np.int64)
    outage = int(rng.integers(2, 4)) if incidents else None
    if outage is not None:  # the planted revenue drop: most of the last day's orders never happen
        w = HOUR / HOUR.sum()
        counts[-1] = round(counts[-1] * (w[:outage].sum() + OUTAGE_KEEP * w[outage:].sum()))
    for day, keep in (order_keep or {}).items():
        counts[day - days[0]] = round(counts[day - days[0]] * keep)

    months = days.astype("datetime64[D]").astype("datetime64[M]")
    starts = np.flatnonzero(np.r_[True, months[1:] != months[:-1]])
    bounds = list(zip(starts.tolist(), np.r_[starts[1:], DAYS].tolist()))
    per_month = np.array([counts[a:b].sum() for a, b in bounds])
    new = np.round(per_month * NEW_CUSTOMER_SHARE).astype(np.int64)
    new[0] = per_month[0]  # nobody can return in the first month
    return Calendar(days=days, month_bounds=bounds, demand=demand, counts=counts,
                    order_offset=np.r_[0, np.cumsum(per_month)[:-1]],
                    new_customers=new, customer_offset=np.r_[0, np.cumsum(new)[:-1]],
                    outage_hour=outage)
