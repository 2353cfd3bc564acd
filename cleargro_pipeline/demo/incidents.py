"""Planted business-alert incidents: one of each alert type, each on its own day(s) in the
six weeks before as_of, so every one has a clean 8-week same-weekday baseline; without
incidents (`DemoShop(..., incidents=False)`) nothing is planted at all. What each incident does
to the data, and on which days: the table in `demo/README.md`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROAS_WINDOW = 7


@dataclass(frozen=True)
class Incidents:
    roas_first: int  # days since 1970-01-01
    roas_keep: float  # share of Ads conversions (and value) recorded in the ROAS week
    stockout_day: int  # the bestseller's last sale; zero stock at the end of it and the next day
    orders_day: int
    orders_keep: float  # share of the day's orders that go through
    sessions_day: int
    sessions_keep: float  # share of the day's sessions GA4 records
    bots_day: int
    bots_extra: float  # bot sessions as a multiple of the day's expected sessions
    spike_candidates: tuple[int, ...]  # the spike lands on one of these (see DemoShop.spike_day)
    spike_factor: float  # account spend x this, conversions unchanged

    @property
    def roas_last(self) -> int:
        """The 7th day of the ROAS week: the whole 7-day window is affected."""
        return self.roas_first + ROAS_WINDOW - 1

    def roas_days(self) -> range:
        return range(self.roas_first, self.roas_first + ROAS_WINDOW)


def plan_incidents(rng: np.random.Generator, as_of: int) -> Incidents:
    a = as_of
    candidates = a - np.arange(3, 10)
    return Incidents(
        roas_first=a - int(rng.integers(42, 46)), roas_keep=float(rng.uniform(0.40, 0.50)),
        stockout_day=a - int(rng.integers(31, 34)),
        orders_day=a - int(rng.integers(25, 30)), orders_keep=float(rng.uniform(0.30, 0.40)),
        sessions_day=a - int(rng.integers(18, 23)), sessions_keep=float(rng.uniform(0.25, 0.35)),
        bots_day=a - int(rng.integers(11, 16)), bots_extra=float(rng.uniform(1.6, 2.0)),
        spike_candidates=tuple(int(d) for d in rng.permutation(candidates)),
        spike_factor=float(rng.uniform(2.4, 2.8)),
    )
