"""Stock history: end-of-day levels per (variant, location) over the two years.

Each (variant, location) is restocked in cycles of K days (K from its sales rate: about
20-60 units a delivery, at least every 14 days). Within a cycle the level at the end of a
day is the cycle's closing buffer plus the units still to be sold in the cycle, so it
falls with every sale, jumps at a delivery, and ends today at the current level. Buffers
are >= 1 at the main warehouse for every non-planted variant: they are never out of
stock. Planted stock-outs close a cycle with an empty buffer (no sales then: the demand
is zero on those days). Deliveries are never negative: a buffer is capped at what the
next cycle starts from.

Vectorised over all series: events are the sales days, the delivery days and the first
day; a row is kept only where the level changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_RESTOCK = 1 << 30  # cycle length of series that never need a delivery


@dataclass
class StockHistory:
    series: np.ndarray  # variant * n_locations + location, sorted by (series, day)
    day: np.ndarray  # days since 1970-01-01 (the row is that day's end-of-day level)
    level: np.ndarray
    n_locations: int

    def final(self, n_series: int) -> np.ndarray:
        last = np.r_[self.series[1:] != self.series[:-1], True]
        out = np.zeros(n_series, np.int64)
        out[self.series[last]] = self.level[last]
        return out

    def daily(self, variants: np.ndarray, first: int, last: int) -> np.ndarray:
        """(len(variants), last - first + 1) stock summed over locations, end of each day."""
        days = np.arange(first, last + 1)
        out = np.zeros((len(variants), len(days)), np.int64)
        for i, v in enumerate(variants):
            for loc in range(self.n_locations):
                s = int(v) * self.n_locations + loc
                lo, hi = np.searchsorted(self.series, [s, s + 1])
                idx = np.searchsorted(self.day[lo:hi], days, side="right") - 1
                out[i] += np.where(idx >= 0, self.level[lo:hi][np.maximum(idx, 0)], 0)
        return out


def build_history(rng: np.random.Generator, n_series: int, n_locations: int, first_day: int, as_of: int,
                  sales: tuple[np.ndarray, np.ndarray, np.ndarray], final: np.ndarray,
                  empty_until: dict[int, int]) -> StockHistory:
    """`sales` (series, day, units) sorted by (series, day); `final` today's level per series;
    `empty_until` {series: day}: a cycle ends that day with nothing left (a planted stock-out;
    today for the out-of-stock ones, whose final level is 0)."""
    s_sales, d_sales, q_sales = sales
    n_days = as_of - first_day + 1
    total = np.bincount(s_sales, weights=q_sales, minlength=n_series)
    rate = total / n_days
    lot = rng.uniform(20, 60, n_series)
    k = np.where(rate > 0, np.clip(np.round(lot / np.maximum(rate, 1e-12)), 14, NO_RESTOCK), NO_RESTOCK)
    k = k.astype(np.int64)
    phase = (rng.random(n_series) * np.minimum(k, n_days)).astype(np.int64)
    safety = np.ceil(rate * rng.uniform(3, 10, n_series)).astype(np.int64)
    safety += (np.arange(n_series) % n_locations == 0)  # the main warehouse always keeps one
    for s, day in empty_until.items():  # a delivery the day after the stock-out ends
        k[s] = max(int(k[s]), 35) if k[s] < NO_RESTOCK else 60
        phase[s] = (-(day + 1 - first_day)) % k[s]

    # Cycles of each series: 0 .. c_last (cycle c starts on first_day - phase + c * k).
    c_last = (as_of - first_day + phase) // k
    n_cyc = c_last + 1
    cyc0 = np.cumsum(n_cyc) - n_cyc  # flat index of each series' first cycle
    cyc_series = np.repeat(np.arange(n_series), n_cyc)
    cyc_c = np.arange(len(cyc_series)) - cyc0[cyc_series]
    sale_cyc = cyc0[s_sales] + (d_sales - first_day + phase[s_sales]) // k[s_sales]
    cyc_total = np.bincount(sale_cyc, weights=q_sales, minlength=len(cyc_series)).astype(np.int64)

    # Closing buffers: today's level for the last cycle, planted zeros, else safety stock
    # with some variation from cycle to cycle.
    noise = 0.7 + 0.6 * _hash01(cyc_series, cyc_c)
    buffer = np.round(safety[cyc_series] * noise).astype(np.int64)
    buffer = np.maximum(buffer, (cyc_series % n_locations == 0).astype(np.int64))
    last_cyc = cyc0 + c_last
    buffer[last_cyc] = final
    for s, day in empty_until.items():
        buffer[cyc0[s] + (day - first_day + phase[s]) // k[s]] = 0
    # No negative delivery: a cycle may close with at most what the next one opens with.
    pos_from_end = (cyc0 + n_cyc)[cyc_series] - 1 - np.arange(len(cyc_series))
    by_pos = np.argsort(pos_from_end, kind="stable")
    bounds = np.searchsorted(pos_from_end[by_pos], np.arange(1, int(n_cyc.max()) + 1))
    for p in range(1, int(n_cyc.max())):
        idx = by_pos[bounds[p - 1]:bounds[p]]
        buffer[idx] = np.minimum(buffer[idx], buffer[idx + 1] + cyc_total[idx + 1])

    # Events: sales days, delivery days (cycle starts after the first) and the first day,
    # as one sorted key (series, day); int32 where it fits: millions of rows on the large shop.
    later = cyc_c > 0
    delivery_day = first_day - phase[cyc_series[later]] + cyc_c[later] * k[cyc_series[later]]
    key = np.concatenate([s_sales.astype(np.int64) * (n_days + 1) + (d_sales - first_day),
                          cyc_series[later] * (n_days + 1) + (delivery_day - first_day),
                          np.arange(n_series, dtype=np.int64) * (n_days + 1)])
    ev_q = np.concatenate([q_sales, np.zeros(int(later.sum()) + n_series, np.int32)]).astype(np.int32)
    del delivery_day
    order = np.argsort(key, kind="stable")
    key, ev_q = key[order], ev_q[order]
    del order
    head = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ev_q, key = np.add.reduceat(ev_q, head), key[head]
    del head
    ev_s = (key // (n_days + 1)).astype(np.int32)
    ev_d = (key % (n_days + 1)).astype(np.int32) + np.int32(first_day)
    del key
    ev_cyc = (cyc0[ev_s] + (ev_d - first_day + phase[ev_s]) // k[ev_s]).astype(np.int32)
    sold = np.cumsum(ev_q, dtype=np.int64)
    cyc_head = np.r_[True, ev_cyc[1:] != ev_cyc[:-1]]
    start_idx = np.maximum.accumulate(np.where(cyc_head, np.arange(len(ev_cyc), dtype=np.int32), 0))
    del cyc_head
    level = buffer[ev_cyc] + cyc_total[ev_cyc] - (sold - (sold[start_idx] - ev_q[start_idx]))
    del sold, start_idx, ev_cyc, ev_q

    changed = np.r_[True, (ev_s[1:] != ev_s[:-1]) | (level[1:] != level[:-1])]
    return StockHistory(series=ev_s[changed], day=ev_d[changed], level=level[changed].astype(np.int32),
                        n_locations=n_locations)


def _hash01(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random number in [0, 1) per (a, b), without an RNG stream per cycle."""
    h = (a.astype(np.uint64) * np.uint64(2654435761) + b.astype(np.uint64) * np.uint64(40503)
         + np.uint64(97)) % np.uint64(2**32)
    h = (h * np.uint64(2246822519)) % np.uint64(2**32)
    return h.astype(np.float64) / 2**32
