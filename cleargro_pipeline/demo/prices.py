"""Price history: a row per price change, built backwards from today's price.

The two years are cut into 60-day slots; in a slot a variant may get a permanent raise
(early in the slot) and a temporary sale (later, 7-21 days, then back to the regular
price), so changes never overlap. Nothing changes in the last FREEZE_DAYS days except the
planted rises: a sale ending or a raise there would be a price rise the rules look at
(and a sale would dent a product's 28-day revenue).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .columns import US_PER_DAY

SLOT_DAYS = 60
FREEZE_DAYS = 60
RAISE_P, SALE_P = 0.15, 0.25  # per slot: ~0.9 raises and ~1.5 sales a year
SALE_DEPTHS = np.array([0.10, 0.15, 0.20, 0.25, 0.30])
US_PER_S = 1_000_000


def round99(cents: np.ndarray) -> np.ndarray:
    """Shop prices end in .99."""
    return np.maximum(np.round(np.asarray(cents) / 100).astype(np.int64), 1) * 100 - 1


@dataclass
class PriceHistory:
    variant: np.ndarray  # sorted by (variant, valid_from)
    valid_from: np.ndarray  # µs
    price: np.ndarray  # cents
    compare_at: np.ndarray  # cents, valid where has_compare
    has_compare: np.ndarray
    base_s: int  # lookup keys: seconds since this, under the variant in the high bits

    def _keys(self, variant: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        return (np.asarray(variant, np.int64) << 32) + (np.asarray(t_us) // US_PER_S - self.base_s)

    def __post_init__(self):
        self._row_keys = self._keys(self.variant, self.valid_from)
        n_v = int(self.variant.max()) + 1 if len(self.variant) else 0
        self._last_change = np.zeros(n_v, np.int64)
        np.maximum.at(self._last_change, self.variant, self.valid_from)
        self._current = np.zeros(n_v, np.int64)
        self._current[self.variant[np.r_[self.variant[1:] != self.variant[:-1], True]]] = \
            self.price[np.r_[self.variant[1:] != self.variant[:-1], True]]

    def price_at(self, variant: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        """The price in force at t_us (every variant has a row from its creation on)."""
        out = self._current[variant]
        old = np.flatnonzero(t_us < self._last_change[variant])  # only these need a search
        keys = self._keys(variant[old], t_us[old])
        order = np.argsort(keys)  # sorted queries search several times faster (cache)
        row = np.empty(len(keys), np.int64)
        row[order] = np.searchsorted(self._row_keys, keys[order], side="right") - 1
        out[old] = self.price[row]
        return out


def build_prices(rng: np.random.Generator, current: np.ndarray, compare_at: np.ndarray, has_compare: np.ndarray,
                 created_us: np.ndarray, first_day: int, as_of: int,
                 rises: dict[int, tuple[int, float]]) -> PriceHistory:
    """`rises` {variant: (day, pct)}: planted raises to today's price on that day."""
    n_v = len(current)
    n_s = (as_of - FREEZE_DAYS - first_day + 1) // SLOT_DAYS
    raise_ = rng.random((n_v, n_s)) < RAISE_P
    raise_pct = rng.uniform(0.03, 0.10, (n_v, n_s))
    raise_day = rng.integers(0, 10, (n_v, n_s))
    sale = rng.random((n_v, n_s)) < SALE_P
    depth = SALE_DEPTHS[rng.integers(0, len(SALE_DEPTHS), (n_v, n_s))]
    sale_day = rng.integers(12, 30, (n_v, n_s))
    sale_len = rng.integers(7, 22, (n_v, n_s))
    minute = rng.integers(6 * 60, 11 * 60, (n_v, n_s, 3)) * 60 * US_PER_S  # changes go live mid-morning UTC

    # The regular price before a planted rise, then backwards through the slots.
    regular = current.copy()
    planted = np.array(sorted(rises), dtype=np.int64)
    if len(planted):
        pct = np.array([rises[v][1] for v in planted])
        regular[planted] = round99(current[planted] / (1 + pct))
    reg = np.empty((n_v, n_s + 1), np.int64)  # reg[:, j]: regular price at the start of slot j
    reg[:, n_s] = regular
    for j in reversed(range(n_s)):
        reg[:, j] = np.where(raise_[:, j], round99(reg[:, j + 1] / (1 + raise_pct[:, j])), reg[:, j + 1])

    slot0 = (first_day + np.arange(n_s) * SLOT_DAYS) * US_PER_DAY
    v = np.arange(n_v)[:, None] * np.ones((1, n_s), np.int64)
    after = reg[:, 1:]
    was = np.where(has_compare[:, None], compare_at[:, None], after)  # a sale shows the regular price as "was"
    parts = [  # (variant, valid_from, price, compare_at, has_compare)
        (np.arange(n_v), created_us, reg[:, 0], compare_at, has_compare),
        (v[raise_], (slot0 + raise_day * US_PER_DAY + minute[..., 0])[raise_], after[raise_],
         compare_at[v[raise_]], has_compare[v[raise_]]),
        (v[sale], (slot0 + sale_day * US_PER_DAY + minute[..., 1])[sale], round99(after * (1 - depth))[sale],
         was[sale], np.ones(int(sale.sum()), bool)),
        (v[sale], (slot0 + (sale_day + sale_len) * US_PER_DAY + minute[..., 2])[sale], after[sale],
         compare_at[v[sale]], has_compare[v[sale]]),
    ]
    if len(planted):
        day = np.array([rises[v][0] for v in planted])
        at = day * US_PER_DAY + rng.integers(7 * 60, 10 * 60, len(planted)) * 60 * US_PER_S
        parts.append((planted, at, current[planted], compare_at[planted], has_compare[planted]))
    var, at, price, cmp, has = (np.concatenate(x) for x in zip(*parts))
    order = np.lexsort((at, var))
    var, at, price, cmp, has = var[order], at[order], price[order], cmp[order], has[order]
    # Rounding can make a "change" that changes nothing: keep real changes only.
    same = np.r_[False, (var[1:] == var[:-1]) & (price[1:] == price[:-1]) & (has[1:] == has[:-1])
                 & (~has[1:] | (cmp[1:] == cmp[:-1]))]
    keep = ~same
    return PriceHistory(variant=var[keep], valid_from=at[keep], price=price[keep], compare_at=cmp[keep],
                        has_compare=has[keep], base_s=int(created_us.min() // US_PER_S) - 1)

