"""Which variants the order lines of a day sell: low-discrepancy demand.

Every variant has a daily weight: popularity x a slow drift x daily noise x the planted
multipliers (a stock-out sells nothing, a declining product a third). A day's expected
lines are shared out by weight, and a variant's lines on a day are the integer steps of
its cumulative expectation plus a fixed phase. Any window's line count is then within
one of its expectation: trends and refund rates stay bounded by construction, so no
non-planted variant drifts across a rule's threshold by sampling luck, while the daily
noise keeps bestsellers' days from looking identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LINES_PER_ORDER = 1.6  # mean of 1 + min(Poisson(0.6), 7), the old per-order draw
DAILY_NOISE = 0.25  # weights vary +-25% from day to day
DRIFT_PER_YEAR = 0.2  # popularity drifts at most +-20% a year (log scale)


@dataclass
class Multipliers:
    """Planted demand changes: variant v sells `factor` x its weight on days [first, last]."""
    variant: list[int] = field(default_factory=list)
    first: list[int] = field(default_factory=list)  # day numbers (days since 1970-01-01)
    last: list[int] = field(default_factory=list)
    factor: list[float] = field(default_factory=list)

    def add(self, variants, first: int, last, factor) -> None:
        n = len(variants)
        self.variant += [int(v) for v in variants]
        self.first += [int(first)] * n if np.isscalar(first) else [int(x) for x in first]
        self.last += [int(last)] * n if np.isscalar(last) else [int(x) for x in last]
        self.factor += [float(factor)] * n if np.isscalar(factor) else [float(x) for x in factor]


@dataclass
class Demand:
    popularity: np.ndarray  # (n_v,) base weight
    growth: np.ndarray  # (n_v,) log drift per year
    days: np.ndarray  # calendar days
    lines: np.ndarray  # expected lines per day
    month_bounds: list[tuple[int, int]]
    seeds: list[np.random.SeedSequence]  # one noise stream per month
    mult: Multipliers = field(default_factory=Multipliers)
    phase: np.ndarray | None = None  # (n_v,) in [0, 1) plus planted adjustments
    offsets: np.ndarray | None = None  # (n_months + 1, n_v) cumulative expectation at month starts
    _quotas: dict = field(default_factory=dict)  # month -> (day, variant): orders are regenerated often

    @property
    def n_variants(self) -> int:
        return len(self.popularity)

    def base_weights(self, a: int, b: int) -> np.ndarray:
        """(b - a, n_v) weights of days a..b-1 (indexes) without noise or planted changes."""
        t = (self.days[a:b] - self.days[0])[:, None] / 365.25 - 1.0
        return self.popularity[None, :] * np.exp(self.growth[None, :] * t)

    def expected(self, a: int, b: int) -> np.ndarray:
        """Expected lines per variant over day indexes a..b-1, before planted changes."""
        w = self.base_weights(a, b)
        return (self.lines[a:b, None] * w / w.sum(axis=1, keepdims=True)).sum(axis=0)

    def increments(self, m: int) -> np.ndarray:
        """(days of month m, n_v) expected lines per variant and day."""
        a, b = self.month_bounds[m]
        rng = np.random.default_rng(self.seeds[m])
        w = self.base_weights(a, b) * rng.uniform(1 - DAILY_NOISE, 1 + DAILY_NOISE, (b - a, self.n_variants))
        for v, first, last, f in zip(self.mult.variant, self.mult.first, self.mult.last, self.mult.factor):
            lo, hi = max(first - self.days[a], 0), min(last - self.days[a] + 1, b - a)
            if lo < hi:
                w[lo:hi, v] *= f
        return self.lines[a:b, None] * w / w.sum(axis=1, keepdims=True)

    def finish(self, rng: np.random.Generator, sells_on: dict[int, int] | None = None) -> None:
        """Cumulative expectations at month starts, and phases. `sells_on` {variant: day}:
        phase the variant so that one of its lines falls on that day (the planted
        out-of-stock variants sell their last unit the day before they show as empty, the
        planted bestseller stock-out its last before it runs out)."""
        sells_on = sells_on or {}
        n_m = len(self.month_bounds)
        month_of = {day: self._month_of(day) for day in sells_on.values()}
        self.offsets = np.zeros((n_m + 1, self.n_variants))
        kept = {}
        for m in range(n_m):
            inc = self.increments(m)
            # the same sum as quotas() computes, so month boundaries agree to the bit
            self.offsets[m + 1] = (self.offsets[m][None, :] + np.cumsum(inc, axis=0))[-1]
            if m in month_of.values():
                kept[m] = inc
        self.phase = rng.random(self.n_variants)
        for v, day in sells_on.items():
            m = month_of[day]
            i = day - int(self.days[self.month_bounds[m][0]])
            cum = (self.offsets[m][None, :] + np.cumsum(kept[m], axis=0))[:, v]
            x, step = cum[i], cum[i] - (cum[i - 1] if i > 0 else self.offsets[m, v])
            if step <= 0:
                raise ValueError(f"variant {v} has no demand on day {day}")
            self.phase[v] = np.ceil(x) - x + min(step / 2, 1e-6)  # an integer step lands on day i

    def _month_of(self, day: int) -> int:
        for m, (a, b) in enumerate(self.month_bounds):
            if self.days[a] <= day < self.days[a] + (b - a):
                return m
        raise ValueError(f"day {day} is outside the calendar")

    def quotas(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Lines of month m: (day index within the month, variant), sorted by day. Kept
        (6 bytes a line, 50 MB on the large shop): every table of orders regenerates them."""
        if m not in self._quotas:
            self._quotas[m] = self._make_quotas(m)
        day, variant = self._quotas[m]
        return day.astype(np.int64), variant.astype(np.int64)

    def _make_quotas(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        inc = self.increments(m)
        cum = self.offsets[m][None, :] + np.cumsum(inc, axis=0)
        steps = np.floor(cum + self.phase)
        steps = np.diff(np.vstack([np.floor(self.offsets[m] + self.phase)[None, :], steps]), axis=0)
        day, variant = np.nonzero(steps)
        k = steps[day, variant].astype(np.int64)
        return np.repeat(day.astype(np.int16), k), np.repeat(variant.astype(np.int32), k)


def build_demand(rng: np.random.Generator, popularity: np.ndarray, days: np.ndarray, counts: np.ndarray,
                 month_bounds: list[tuple[int, int]], seed_parts: list[int]) -> Demand:
    growth = rng.uniform(-DRIFT_PER_YEAR, DRIFT_PER_YEAR, len(popularity))
    seeds = [np.random.SeedSequence([*seed_parts, m]) for m in range(len(month_bounds))]
    return Demand(popularity=popularity, growth=growth, days=days, lines=counts * LINES_PER_ORDER,
                  month_bounds=month_bounds, seeds=seeds)
