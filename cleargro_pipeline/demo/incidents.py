"""Planted business-alert incidents: one of each alert type, each on its own day(s) in the
six weeks before as_of, so every one has a clean 8-week same-weekday baseline.

| alert type | what happens in the data | day(s), before as_of A |
| --- | --- | --- |
| `roas_drop` | Google Ads conversions and their value fall to 40-50% for 7 days (spend unchanged) | A-45..A-42 to +6 |
| `bestseller_stockout` | a top bestseller (policy deny) sells its last unit on day D, sells nothing on D+1 and is restocked on D+2 | A-33..A-31 |
| `orders_drop` | a payment-provider fault: only 30-40% of the day's orders go through (revenue, GA4 purchases and Ads conversions fall with them) | A-29..A-25 |
| `sessions_drop` | a GA4 tracking fault: GA4 records 25-35% of the day's sessions (orders and item reports unchanged) | A-22..A-18 |
| `conversion_rate_drop` | bot traffic: 1.6-2.0 x the day's sessions arrive on top as direct traffic, none of it buys | A-15..A-11 |
| `ad_spend_spike_without_revenue` | a bidding fault: the Ads account spends 2.4-2.8 x its plan in one day for the usual conversions | the one of A-9..A-3 whose shop revenue is lowest against its baseline |
| `revenue_drop` | the checkout outage on A itself (calendar.py) | A |

The stock-out lies more than 30 days back (its two zero days never reach the 30-day window of
`stockout_lost_sales`), the ROAS week more than 30 days back (the 30-day campaign and product
ROAS of the opportunity rules do not see it). A side effect is no fault: the orders drop also
drops revenue and the conversion rate that day, and the as-of outage drops orders and the
conversion rate too; the ground truth (truth.incidents) names each incident by its own type.

Without incidents (`DemoShop(..., incidents=False)`) nothing is planted at all: no incident,
no opportunity situation, no app event.
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
