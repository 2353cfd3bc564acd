"""GA4 reports for one month, derived from that month's orders.

Purchases and revenue are the orders GA4 tracked (~94%, consent and blockers lose
the rest); views follow purchases through a per-item view-to-purchase rate, which
is what makes every non-planted item convert near the shop median.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .catalog import Catalog
from .columns import build, dates, strings
from .orders import OrdersMonth

CHANNELS = ["google / cpc", "google / organic", "(direct) / (none)", "newsletter / email",
            "facebook / paid", "pinterest / social"]
ORDER_SHARE = np.array([0.28, 0.25, 0.20, 0.12, 0.09, 0.06])
SESSION_CR = np.array([0.025, 0.02, 0.03, 0.04, 0.012, 0.01])
ENGAGED = np.array([0.62, 0.66, 0.58, 0.70, 0.45, 0.50])
TRACKED = 0.94
DIRECT = CHANNELS.index("(direct) / (none)")  # where planted bot traffic lands
VIEW_TO_PURCHASE = 0.04  # the shop's median item rate
BROWSE_VIEWS = 0.1  # daily views of an item that nobody buys


def session_factor(days: np.ndarray, sessions_drop: dict[int, float], bots: dict[int, float]) -> np.ndarray:
    """(days, channels) factors of the planted session incidents: `sessions_drop` {day: share
    recorded} on every channel; `bots` {day: extra}: extra x the day's expected sessions arrive
    as direct traffic."""
    factor = np.ones((len(days), len(CHANNELS)))
    share = ORDER_SHARE / SESSION_CR  # expected sessions per channel, relative
    for day, keep in sessions_drop.items():
        factor[days == day] *= keep
    for day, extra in bots.items():
        factor[days == day, DIRECT] += extra * share.sum() / share[DIRECT]
    return factor


def item_rates(rng: np.random.Generator, n_variants: int, planted: np.ndarray) -> np.ndarray:
    rate = VIEW_TO_PURCHASE * rng.uniform(0.9, 1.1, n_variants)
    rate[planted] = VIEW_TO_PURCHASE * rng.uniform(0.15, 0.30, len(planted))
    return rate


def tracked_orders(om: OrdersMonth, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = len(om.g)
    tracked = ~om.test & (rng.random(n) < TRACKED)
    channel = rng.choice(len(CHANNELS), n, p=ORDER_SHARE)
    return tracked, channel


def traffic_table(om, tracked, channel, rng, days, demand, factor: np.ndarray | None = None) -> pa.Table:
    """`factor` (days, channels): planted changes of the sessions GA4 records (incidents.py)."""
    n_d, n_c = len(days), len(CHANNELS)
    key = (om.day - days[0]) * n_c + channel
    purchases = np.bincount(key[tracked], minlength=n_d * n_c)
    revenue = np.bincount(key[tracked], weights=om.total[tracked] / 100, minlength=n_d * n_c)
    # Sessions follow expected demand, so a checkout outage shows as a conversion drop.
    sessions = np.round(demand[:, None] * ORDER_SHARE / SESSION_CR * rng.lognormal(0, 0.08, (n_d, n_c))
                        * (1.0 if factor is None else factor))
    sessions = np.maximum(sessions.ravel().astype(np.int64), purchases * 3)
    engaged = rng.binomial(sessions, np.tile(ENGAGED, n_d))
    return build("raw_ga4", "traffic_daily", {
        "date": dates(np.repeat(days, n_c)), "sessionSourceMedium": strings(CHANNELS, np.tile(np.arange(n_c), n_d)),
        "sessions": pa.array(sessions), "engagedSessions": pa.array(engaged),
        "ecommercePurchases": pa.array(purchases), "purchaseRevenue": pa.array(np.round(revenue, 2)),
        **unflagged(n_d * n_c),
    })


def items_table(om, tracked, rng, days, cat: Catalog, rate: np.ndarray,
                changes: tuple[tuple[int, int, float], ...] = ()) -> pa.Table:
    """`changes` (variant, first day, factor): the item converts `factor` x as well from
    that day on (a planted price rise: as many views, fewer purchases)."""
    n_d, n_v = len(days), cat.n_variants
    lines = np.flatnonzero(tracked[om.line_order])
    key = (om.day[om.line_order[lines]] - days[0]) * n_v + om.variant[lines]
    bought = np.bincount(key, weights=om.qty[lines], minlength=n_d * n_v).astype(np.int64)
    revenue = np.bincount(key, weights=om.line_net()[lines] / 100, minlength=n_d * n_v)
    rate_grid = np.tile(rate, (n_d, 1))
    for v, first, factor in changes:
        rate_grid[days >= first, v] *= factor
    rate_grid = rate_grid.ravel()
    views = np.round(bought / rate_grid * rng.uniform(0.95, 1.05, n_d * n_v)).astype(np.int64)
    views += rng.poisson(BROWSE_VIEWS, n_d * n_v)
    carts = np.minimum(views, np.maximum(bought, rng.binomial(views, 0.09)))
    keep = np.flatnonzero(views > 0)
    v = keep % n_v
    return build("raw_ga4", "items_daily", {
        "date": dates(days[keep // n_v]), "itemId": cat.sku.take(pa.array(v)),
        "itemName": cat.title.take(pa.array(cat.product[v])),
        "itemsViewed": pa.array(views[keep]), "itemsAddedToCart": pa.array(carts[keep]),
        "itemsPurchased": pa.array(bought[keep]), "itemRevenue": pa.array(np.round(revenue[keep], 2)),
        **unflagged(len(keep)),
    })


def unflagged(rows: int) -> dict[str, pa.Array]:
    """GA's data-quality flags of the demo property's answers: none raised (no thresholding,
    no "(other)" row, unsampled)."""
    no = pa.array(np.zeros(rows, dtype=bool))
    return {"dataLossFromOtherRow": no, "subjectToThresholding": no, "sampled": no}
