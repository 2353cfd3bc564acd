"""The embedded demo shop: deterministic, seeded, columnar, streamed in chunks. `DemoShop` is
the facade over the sibling modules: every chunk draws from its own RNG (seed, stream, chunk
index), dimension data is built once and cached, fact tables month by month, and the planted
situations are chosen before demand so that every other entity stays clear of every rule by
construction (`oracle.py` checks it). The generation order and the planted incidents:
`demo/README.md`.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Iterator

import numpy as np
import pyarrow as pa

from cleargro_pipeline.sources.contract import TABLES

from . import ads, app, ga4, orders, words
from .calendar import HOUR, OUTAGE_KEEP, Calendar, build_calendar
from .catalog import CATEGORY_NAMES, Catalog, build_catalog, customer_ids, shopper_identity, size_spec
from .columns import US_PER_DAY, build, money, strings, ts
from .demand import Demand, Multipliers, build_demand
from .incidents import Incidents, plan_incidents
from .inventory import StockHistory, build_history
from .prices import PriceHistory, build_prices
from .truth import PlantedSituation, ground_truth, incidents, opportunity_id, planted_entities

OVERSTOCK_QUIET = 100  # planted slow movers have sold nothing for this many days
FAULTY_DAYS = 120  # the faulty batch has been selling this long
# Days before as_of from which a planted opportunity could be seen in the app (for views).
LIVE_FOR = {"ads_on_out_of_stock": 1, "bestseller_low_stock": 10, "stockout_lost_sales": 15,
            "wasted_keyword": 400, "wasted_search_term": 400, "campaign_below_target_roas": 400,
            "budget_limited_profitable_campaign": 30, "high_traffic_low_conversion_product": 400,
            "overstock_slow_mover": 10, "declining_product": 10, "high_refund_rate_product": 60,
            "negative_margin_ads_product": 400, "price_change_conversion_drop": 7}

MONTHLY = {("raw_shop", "orders"), ("raw_shop", "order_line_items"), ("raw_shop", "order_refund_line_items"),
           ("raw_shop", "customers"), ("raw_ga4", "items_daily"), ("raw_ga4", "traffic_daily"),
           ("raw_google_ads", "campaign_daily"), ("raw_google_ads", "shopping_product_daily"),
           ("raw_google_ads", "keyword_daily"), ("raw_google_ads", "search_term_daily")}
DIMENSION_CHUNK = 100_000
HISTORY_CHUNK = 1_000_000
END_OF_DAY = US_PER_DAY - 1_000_000  # history rows are end-of-day levels, stamped 23:59:59
REFUND_CAP, REFUND_FREE = 1.3, 3  # non-planted variants refund at most 3 units or 1.3 x the shop's
# rate over 90 days (the rule flags 5 units and 2 x)
SLOW_VALUE = (30_000, 45_000)  # cents at cost: the most a non-planted variant with <= 2 (3-4) units
# sold in 90 days keeps in stock (the rule flags $500)


@dataclass
class RecentSales:
    """Per-variant sales of counted orders (not test, not cancelled) up to as_of."""
    units_28: np.ndarray
    revenue_28: np.ndarray  # cents, net of line discounts
    units_3: np.ndarray
    units_30: np.ndarray
    units_90: np.ndarray
    daily_revenue: dict[int, int]  # day -> subtotal cents, last 30 days

    def top_share(self, share: float = 0.2) -> np.ndarray:
        """Variants in the top `share` by 28-day revenue, among those that sold."""
        sellers = int((self.revenue_28 > 0).sum())
        order = np.argsort(-self.revenue_28, kind="stable")
        return order[: int(np.ceil(share * sellers))]


@dataclass
class Plan:
    """Planted situations (variant indexes unless said otherwise) and their parameters."""
    oos: np.ndarray  # sold their last unit today, still advertised
    low_stock: np.ndarray  # bestsellers about to run out
    low_conversion: np.ndarray  # much-viewed, rarely bought items
    ads: ads.AdsPlan
    stockout: np.ndarray = field(default_factory=lambda: _none())  # sold out for a week, restocked since
    stockout_days: dict[int, tuple[int, int]] = field(default_factory=dict)  # v -> (first, last) day without sales
    overstock: np.ndarray = field(default_factory=lambda: _none())  # stopped selling, shelves full
    declining: np.ndarray = field(default_factory=lambda: _none())  # sells a third of last month
    faulty: np.ndarray = field(default_factory=lambda: _none())  # a faulty batch: many returns
    losing: np.ndarray = field(default_factory=lambda: _none())  # ads cost more than their margin
    price_rise: np.ndarray = field(default_factory=lambda: _none())  # raised, then conversion fell
    rises: dict[int, tuple[int, float]] = field(default_factory=dict)  # v -> (day, pct)
    rise_factor: dict[int, float] = field(default_factory=dict)  # v -> conversion factor after the rise
    decline_factor: np.ndarray = field(default_factory=lambda: np.zeros(0))  # demand factor, last 28 days
    bestseller_stockout: np.ndarray = field(default_factory=lambda: _none())  # the alert incident (incidents.py)


def _none() -> np.ndarray:
    return np.zeros(0, np.int64)


class DemoShop:
    def __init__(self, size: str = "small", seed: int = 7, end_date: date = date(2026, 11, 27),
                 incidents: bool = True, tenant: str = "demo"):
        self.spec = size_spec(size)
        self.size, self.seed, self.incidents, self.tenant = size, seed, incidents, tenant
        self.as_of: date = end_date
        self._orders_lru: OrderedDict[int, orders.OrdersMonth] = OrderedDict()
        self._ads_lru: OrderedDict[int, ads.AdsMonth] = OrderedDict()

    # --- RNG streams ---
    def _rng(self, stream: str, chunk: int = 0) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(stream.encode()), chunk]))

    # --- cached dimension data ---
    @cached_property
    def alert_incidents(self) -> Incidents | None:
        """The planted business-alert incidents (incidents.py); None without incidents."""
        if not self.incidents:
            return None
        return plan_incidents(self._rng("incidents"), (self.as_of - date(1970, 1, 1)).days)

    @cached_property
    def calendar(self) -> Calendar:
        inc = self.alert_incidents
        keep = {inc.orders_day: inc.orders_keep} if inc else None
        return build_calendar(self._rng("calendar"), self.as_of, self.spec.orders, self.incidents, keep)

    @property
    def _start_us(self) -> int:
        return int(self.calendar.days[0]) * US_PER_DAY

    @property
    def _cutoff_us(self) -> int:  # end of the as-of day
        return (self.calendar.as_of + 1) * US_PER_DAY

    @cached_property
    def catalog(self) -> Catalog:
        return build_catalog(self._rng("catalog"), self.spec, self._start_us, self._cutoff_us)

    @cached_property
    def ads_layout(self) -> ads.AdsLayout:
        return ads.build_layout(self._rng("ads_layout"), self.catalog, self.spec)

    def _new_demand(self) -> Demand:
        cal = self.calendar
        return build_demand(self._rng("demand_drift"), self.catalog.popularity, cal.days, cal.counts,
                            cal.month_bounds, [self.seed, zlib.crc32(b"demand")])

    @cached_property
    def _demand_base(self) -> Demand:
        """Demand before anything is planted: what the plan chooses from."""
        return self._new_demand()

    @cached_property
    def demand(self) -> Demand:
        """The demand with the planted changes; out-of-stock variants sell their last unit today
        (one zero-stock day: far from the stock-out rule's three)."""
        d, plan, a = self._new_demand(), self.plan, self.calendar.as_of
        d.mult = Multipliers()
        for v, (first, last) in plan.stockout_days.items():
            d.mult.add([v], first, last, 0.0)
        d.mult.add(plan.overstock, a - OVERSTOCK_QUIET, a, 0.0)
        d.mult.add(plan.declining, a - 27, a, plan.decline_factor)
        for v in plan.price_rise:
            d.mult.add([v], plan.rises[int(v)][0], a, plan.rise_factor[int(v)])
        sells_on = {int(v): a for v in plan.oos}
        if len(plan.bestseller_stockout):  # its last unit on the day, nothing the next: zero stock twice
            day = self.alert_incidents.stockout_day
            d.mult.add(plan.bestseller_stockout, day + 1, day + 1, 0.0)
            sells_on.update({int(v): day for v in plan.bestseller_stockout})
        d.finish(self._rng("demand_phase"), sells_on)
        return d

    @cached_property
    def prices(self) -> PriceHistory:
        cat = self.catalog
        return build_prices(self._rng("prices"), cat.price, cat.compare_at, cat.has_compare,
                            cat.product_created[cat.product], int(self.calendar.days[0]), self.calendar.as_of,
                            self.plan.rises)

    @cached_property
    def recent(self) -> RecentSales:
        as_of, n_v = self.calendar.as_of, self.catalog.n_variants
        acc = {k: np.zeros(n_v) for k in ("units_28", "revenue_28", "units_3", "units_30", "units_90")}
        daily: dict[int, int] = {}
        for m in self._months_covering(90):
            om = self._orders(m)
            counted = om.counted()
            lines = counted[om.line_order]
            day = om.day[om.line_order]
            for key, n_days in (("units_28", 28), ("units_3", 3), ("units_30", 30), ("units_90", 90)):
                sel = lines & (day > as_of - n_days)
                acc[key] += np.bincount(om.variant[sel], weights=om.qty[sel], minlength=n_v)
            sel = lines & (day > as_of - 28)
            acc["revenue_28"] += np.bincount(om.variant[sel], weights=om.line_net()[sel], minlength=n_v)
            for d in np.unique(om.day):
                if d > as_of - 30:
                    daily[int(d)] = int(om.subtotal[counted & (om.day == d)].sum())
        return RecentSales(**{k: v.astype(np.int64) for k, v in acc.items()}, daily_revenue=daily)

    @cached_property
    def plan(self) -> Plan:
        """Planted entities, chosen from expected demand (before any order exists), each kind
        from variants well past its thresholds and none planted twice."""
        if not self.incidents:
            return Plan(_none(), _none(), _none(), ads.AdsPlan())
        rng, k, cat, lay, cal = self._rng("plan"), self.spec.planted, self.catalog, self.ads_layout, self.calendar
        n, a = len(cal.days), cal.as_of
        base = self._demand_base
        per_unit = np.where(cat.price < orders.CHEAP, 1.2, 1.0)  # mean quantity of a line
        units = {w: base.expected(n - w, n) * per_unit for w in (28, 30, 90)}
        previous = base.expected(n - 56, n - 28)
        prev_revenue = previous * per_unit * cat.price / 100 * 0.97
        rank = np.empty(cat.n_variants, np.int64)
        rank[np.argsort(-units[28] * cat.price, kind="stable")] = np.arange(cat.n_variants)
        advertised = np.zeros(cat.n_variants, bool)
        advertised[lay.prod_variant] = True
        all_products = np.zeros(cat.n_variants, bool)  # in "Shopping | All Products": normal ROAS
        all_products[lay.prod_variant[lay.prod_campaign == 4]] = True
        taken = np.zeros(cat.n_variants, bool)

        def pick(mask: np.ndarray) -> np.ndarray:
            chosen = _pick(rng, np.flatnonzero(mask & ~taken), k)
            taken[chosen] = True
            return chosen

        # The most demanding first: price rises need 200+ views on both sides of the rise.
        price_rise = pick(units[28] / 28 >= 1.3)
        low_stock = pick((rank < 0.08 * cat.n_variants) & (units[28] >= 40))
        declining = pick(prev_revenue >= 2_500)
        faulty = pick(units[90] >= 60)
        low_conv = pick(units[30] >= 20)
        stockout = pick(cat.deny & (units[28] / 28 >= 0.5))
        oos = pick(all_products & cat.deny & (rank >= 0.35 * cat.n_variants))
        losing = pick(all_products)
        overstock = pick(~advertised & (rank >= 0.6 * cat.n_variants))  # the tail; stops selling

        rises = {int(v): (a - int(rng.integers(12, 17)), float(rng.uniform(0.08, 0.15))) for v in price_rise}
        rise_factor = {int(v): float(rng.uniform(0.40, 0.50)) for v in price_rise}
        # Declining products sell 25-32% of the previous 28 days' lines, whatever the season does
        # (quantities per line add noise: well under the rule's 60% all the same).
        decline_factor = rng.uniform(0.25, 0.32, len(declining)) * previous[declining] / units[28][declining] \
            * per_unit[declining]
        stockout_days = {}
        for v in stockout:
            last = a - int(rng.integers(5, 9))
            stockout_days[int(v)] = (last - int(rng.integers(7, 11)) + 1, last)

        normal_search = np.isin(lay.kw_campaign, ads.NORMAL_SEARCH)
        wasted = _pick(rng, np.flatnonzero(normal_search), k)
        hosts = np.flatnonzero((lay.kw_campaign == ads.TERM_HOST_CAMPAIGN) & (lay.kw_match == 2)
                               & ~np.isin(np.arange(len(lay.kw_text)), wasted))
        hosts = _pick(rng, hosts, k)
        texts = [words.WASTED_TERM_TEMPLATES[i % len(words.WASTED_TERM_TEMPLATES)].format(kw=lay.kw_text[h])
                 for i, h in enumerate(hosts)]
        ads_plan = ads.AdsPlan(below_target=ads.BELOW_TARGET, budget_limited=ads.BUDGET_LIMITED,
                               wasted_keywords=wasted, wasted_term_hosts=hosts, wasted_term_texts=texts,
                               oos_products=np.searchsorted(lay.prod_variant, oos), oos_from=a + 1,
                               losing_products=np.searchsorted(lay.prod_variant, losing),
                               losing_rho=rng.uniform(0.06, 0.12, len(losing)))
        # The bestseller stock-out incident: among the top 5% by expected revenue of the 28 days
        # ending on its day (the rule flags the top 20%), policy deny, none planted elsewhere.
        # Its own RNG stream: the opportunity plants above do not move.
        end = self.alert_incidents.stockout_day - int(cal.days[0]) + 1
        revenue_then = base.expected(end - 28, end) * per_unit * cat.price
        top = np.empty(cat.n_variants, np.int64)
        top[np.argsort(-revenue_then, kind="stable")] = np.arange(cat.n_variants)
        bestseller_stockout = _pick(self._rng("incident_plan"),
                                    np.flatnonzero((top < 0.05 * cat.n_variants) & cat.deny & ~taken), 1)
        return Plan(oos=oos, low_stock=low_stock, low_conversion=low_conv, ads=ads_plan,
                    stockout=stockout, stockout_days=stockout_days, overstock=overstock, declining=declining,
                    faulty=faulty, losing=losing, price_rise=price_rise, rises=rises, rise_factor=rise_factor,
                    decline_factor=decline_factor, bestseller_stockout=bestseller_stockout)

    @cached_property
    def _final_stock(self) -> np.ndarray:
        """Today's units per (variant, location). Non-planted variants hold 40-120 days of
        cover, far above the 14-day lead time, and slow movers (<= 2 units in 90 days) at
        most $300 at cost (3-4 units: $450, unless that is under 20 days of cover); planted
        bestsellers 2-8 days; planted out-of-stock ones none; planted overstock $1,500-3,000
        at cost."""
        rng, rec, plan, cat = self._rng("inventory"), self.recent, self.plan, self.catalog
        n_v, n_l = cat.n_variants, len(cat.location_id)
        daily = rec.units_28 / 28
        total = np.ceil(daily * rng.uniform(40, 120, n_v)).astype(np.int64) + rng.integers(5, 40, n_v)
        cover = np.maximum(1, np.ceil(rec.units_28 * 20 / 28)).astype(np.int64)  # 20 days
        slow, slowish = rec.units_90 <= 2, (rec.units_90 > 2) & (rec.units_90 <= 4)
        cap = np.maximum(SLOW_VALUE[0] // cat.cost, 1)  # these sell <= 1 unit in 28 days: cover holds
        total = np.where(slow, np.maximum(np.minimum(total, cap), np.minimum(cover, cap)), total)
        total = np.where(slowish, np.minimum(total, np.maximum(SLOW_VALUE[1] // cat.cost, cover)), total)
        total[plan.low_stock] = np.maximum(1, np.floor(daily[plan.low_stock] * rng.uniform(2, 8, len(plan.low_stock))))
        total[plan.oos] = 0
        shares = np.array([0.6, 0.3, 0.1][:n_l])
        stock = rng.multinomial(total, shares / shares.sum())
        short = (stock[:, 0] == 0) & (total > 0)  # the main warehouse keeps at least one
        stock[short, np.argmax(stock[short], axis=1)] -= 1
        stock[short, 0] += 1
        value = rng.uniform(150_000, 300_000, len(plan.overstock))
        stock[plan.overstock] = 0
        stock[plan.overstock, 0] = np.ceil(value / cat.cost[plan.overstock]).astype(np.int64)
        return stock

    @cached_property
    def stock_history(self) -> StockHistory:
        cat, plan, cal = self.catalog, self.plan, self.calendar
        n_l = len(cat.location_id)
        empty = {int(v) * n_l + loc: last for v, (_, last) in plan.stockout_days.items() for loc in range(n_l)}
        empty.update({int(v) * n_l + loc: cal.as_of for v in plan.oos for loc in range(n_l)})
        if len(plan.bestseller_stockout):  # restocked the day after its second zero day
            day = self.alert_incidents.stockout_day + 1
            empty.update({int(v) * n_l + loc: day for v in plan.bestseller_stockout for loc in range(n_l)})
        return build_history(self._rng("stock_history"), cat.n_variants * n_l, n_l, int(cal.days[0]), cal.as_of,
                             self._full_pass["sales"], self._final_stock.ravel(), empty)

    @cached_property
    def stock(self) -> np.ndarray:
        """Available units per (variant, location) today: the last row of the history."""
        n_l = len(self.catalog.location_id)
        return self.stock_history.final(self.catalog.n_variants * n_l).reshape(-1, n_l)

    @cached_property
    def item_rate(self) -> np.ndarray:
        return ga4.item_rates(self._rng("ga4_rates"), self.catalog.n_variants, self.plan.low_conversion)

    @cached_property
    def _rate_changes(self) -> tuple[tuple[int, int, float], ...]:
        plan = self.plan
        return tuple((int(v), plan.rises[int(v)][0], plan.rise_factor[int(v)]) for v in plan.price_rise)

    @cached_property
    def roas(self) -> np.ndarray:
        return ads.campaign_roas(self.ads_layout, self.plan.ads, self._rng("roas"))

    @cached_property
    def _item_ids(self) -> pa.Array:
        return ads.product_item_ids(self.ads_layout, self.catalog)

    @cached_property
    def _full_pass(self) -> dict:
        """One pass over every month's orders: customers' first/last order, count, spend,
        and the units leaving each (variant, location) per day (every placed order line)."""
        cal, cat = self.calendar, self.catalog
        n = int(cal.customer_offset[-1] + cal.new_customers[-1])
        n_l = len(cat.location_id)
        created = np.full(n, np.iinfo(np.int64).max)
        updated = np.zeros(n, np.int64)
        count, spent = np.zeros(n), np.zeros(n)
        series, days, units = [], [], []
        for m, (a, b) in enumerate(cal.month_bounds):
            om = self._orders(m, cache=False)
            np.minimum.at(created, om.customer, om.created)
            np.maximum.at(updated, om.customer, om.updated)
            count += np.bincount(om.customer, weights=(~om.test).astype(float), minlength=n)
            spent += np.bincount(om.customer, weights=np.where(om.counted(), om.total, 0), minlength=n)
            key = (om.variant * n_l + om.location) * (b - a) + (om.day[om.line_order] - cal.days[a])
            q = np.bincount(key, weights=om.qty, minlength=cat.n_variants * n_l * (b - a))
            nz = np.flatnonzero(q)
            series.append((nz // (b - a)).astype(np.int32))
            days.append((nz % (b - a) + cal.days[a]).astype(np.int32))
            units.append(q[nz].astype(np.int32))
            del key, q, nz, om
        s = np.concatenate(series)
        del series
        order = np.argsort(s, kind="stable")  # months are in day order: now (series, day)
        s, d, q = s[order], np.concatenate(days)[order], np.concatenate(units)[order]
        del order, days, units
        return {"created": created, "updated": updated, "count": count.astype(np.int64),
                "spent": np.round(spent).astype(np.int64), "sales": (s, d, q)}

    @cached_property
    def _customer_stats(self) -> dict[str, np.ndarray]:
        return self._full_pass

    @cached_property
    def _refund_veto(self) -> np.ndarray:
        """Refunds taken back (the latest first) so that no non-planted variant refunds more
        than REFUND_FREE units or REFUND_CAP x the shop's rate over the orders of the last 90
        days. Drawn independently per order, a mid-seller's refunds would cross the rule's
        2 x now and then; this caps them."""
        as_of, n_v = self.calendar.as_of, self.catalog.n_variants
        units, back = np.zeros(n_v), np.zeros(n_v)
        cand = []  # (variant, line id, units) of refunds in the window
        for m in self._months_covering(90):
            om = self._generate(m, None)
            lines = om.counted()[om.line_order] & (om.day[om.line_order] > as_of - 90)
            units += np.bincount(om.variant[lines], weights=om.qty[lines], minlength=n_v)
            r = om.refund_line[lines[om.refund_line]]
            q = om.refund_qty[lines[om.refund_line]]
            back += np.bincount(om.variant[r], weights=q, minlength=n_v)
            cand.append(np.c_[om.variant[r], om.line_ids(r), q])
        rate = back.sum() / max(units.sum(), 1)
        allowed = np.maximum(REFUND_FREE, np.floor(REFUND_CAP * rate * units))
        over = (back > allowed) & ~np.isin(np.arange(n_v), self.plan.faulty)
        cand = np.concatenate(cand)
        cand = cand[over[cand[:, 0]]]
        cand = cand[np.lexsort((-cand[:, 1], cand[:, 0]))]  # per variant, latest lines first
        veto = []
        for v in np.unique(cand[:, 0]):  # a handful of variants
            rows = cand[cand[:, 0] == v]
            excess = back[v] - allowed[v]
            drop = np.cumsum(rows[:, 2]) - rows[:, 2] < excess
            veto.append(rows[drop, 1])
        return np.sort(np.concatenate(veto)) if veto else _none()

    # --- monthly fact data ---
    def _months_covering(self, n_days: int) -> list[int]:
        first = len(self.calendar.days) - n_days
        return [m for m, (a, b) in enumerate(self.calendar.month_bounds) if b > first]

    def _lru(self, cache: OrderedDict, key: int, make, keep: bool = True):
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        value = make()
        if keep:
            cache[key] = value
            while len(cache) > 2:  # one month in flight plus one: bounded memory
                cache.popitem(last=False)
        return value

    def _generate(self, m: int, veto: np.ndarray | None) -> orders.OrdersMonth:
        cat, plan = self.catalog, self.plan
        inputs = orders.OrderInputs(demand=self.demand, prices=self.prices, n_locations=len(cat.location_id),
                                    faulty=plan.faulty, faulty_since=self.calendar.as_of - FAULTY_DAYS, veto=veto)
        return orders.generate_month(cat, self.calendar, m, self._rng("orders", m), inputs)

    def _orders(self, m: int, cache: bool = True) -> orders.OrdersMonth:
        return self._lru(self._orders_lru, m, lambda: self._generate(m, self._refund_veto), keep=cache)

    def _expected_spend(self) -> np.ndarray:
        cat = self.catalog
        order_value = 1.6 * 1.2 * float(cat.popularity @ cat.price) / 100 * 0.97
        return ads.ADS_SHARE * self.calendar.demand * order_value / ads.MEAN_ROAS

    def _keep_last(self) -> float:
        h = self.calendar.outage_hour
        if h is None:
            return 1.0
        w = HOUR / HOUR.sum()
        return float(w[:h].sum() + OUTAGE_KEEP * w[h:].sum())

    @cached_property
    def spike_day(self) -> int | None:
        """The day of the planted ad-spend spike: of the incident's candidate days, the one
        whose shop revenue is lowest against the median of the same weekday over the 8 weeks
        before (the alert wants revenue flat or down; orders never depend on ads)."""
        inc = self.alert_incidents
        if inc is None:
            return None
        revenue = self._daily_revenue(75)
        change = {}
        for day in inc.spike_candidates:
            base = [revenue.get(day - 7 * k, 0) for k in range(1, 9)]
            change[day] = revenue.get(day, 0) / max(float(np.median(base)), 1.0) - 1
        return min(inc.spike_candidates, key=change.get)

    def _daily_revenue(self, n_days: int) -> dict[int, int]:
        """day -> subtotal cents of counted orders, the last n_days."""
        out: dict[int, int] = {}
        for m in self._months_covering(n_days):
            om = self._orders(m)
            counted = om.counted()
            days, inverse = np.unique(om.day, return_inverse=True)
            totals = np.bincount(inverse, weights=np.where(counted, om.subtotal, 0), minlength=len(days))
            out.update({int(d): int(t) for d, t in zip(days, totals)})
        return out

    def _ads_days(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Spend per day (expected, times the planted spike) and the share of each day's
        conversions recorded (the outage, the order drop, the ROAS week, the spike)."""
        days = self.calendar.days[a:b]
        spend = self._expected_spend()[a:b].copy()
        keep = np.where(days == self.calendar.as_of, self._keep_last(), 1.0)
        inc = self.alert_incidents
        if inc is not None:
            keep[days == inc.orders_day] *= inc.orders_keep
            keep[np.isin(days, list(inc.roas_days()))] *= inc.roas_keep
            if np.isin(days, inc.spike_candidates).any():  # spike_day reads recent orders: only here
                spike = days == self.spike_day
                spend[spike] *= inc.spike_factor
                keep[spike] /= inc.spike_factor
        return spend, keep

    def _ads(self, m: int) -> ads.AdsMonth:
        a, b = self.calendar.month_bounds[m]

        def make() -> ads.AdsMonth:
            spend, keep = self._ads_days(a, b)
            return ads.generate_month(self.ads_layout, self.plan.ads, self.roas, self._rng("ads", m),
                                      self.calendar.days[a:b], spend, self.calendar.as_of, keep, self._item_ids)
        return self._lru(self._ads_lru, m, make)

    def _ga4(self, m: int, table: str) -> pa.Table:
        a, b = self.calendar.month_bounds[m]
        om, days = self._orders(m), self.calendar.days[a:b]
        # Both reports share which orders GA4 tracked (one stream), then draw their own.
        tracked, channel = ga4.tracked_orders(om, self._rng("ga4_tracking", m))
        if table == "traffic_daily":
            inc = self.alert_incidents
            factor = ga4.session_factor(days, {inc.sessions_day: inc.sessions_keep}, {inc.bots_day: inc.bots_extra}) \
                if inc else None
            return ga4.traffic_table(om, tracked, channel, self._rng("ga4_traffic", m), days,
                                     self.calendar.demand[a:b], factor)
        return ga4.items_table(om, tracked, self._rng("ga4_items", m), days, self.catalog, self.item_rate,
                               self._rate_changes)

    # --- public API ---
    def table_keys(self) -> list[tuple[str, str]]:
        return [(t.dataset, t.name) for t in TABLES]

    def iter_table(self, dataset: str, table: str) -> Iterator[pa.Table]:
        key = (dataset, table)
        if key not in self.table_keys():
            raise KeyError(f"no demo table {dataset}.{table}")
        if key in MONTHLY:
            for m in range(len(self.calendar.month_bounds)):
                yield self._month_chunk(key, m)
            return
        if table == "inventory_level_history":  # millions of rows on the large shop
            yield from self._history_chunks()
            return
        whole = getattr(self, f"_{table}")()
        for start in range(0, max(whole.num_rows, 1), DIMENSION_CHUNK):
            yield whole.slice(start, DIMENSION_CHUNK)

    def month_chunk(self, dataset: str, table: str, m: int) -> pa.Table:
        """One month's chunk of a monthly table (month 0 is the first month)."""
        return self._month_chunk((dataset, table), m)

    def _month_chunk(self, key: tuple[str, str], m: int) -> pa.Table:
        dataset, table = key
        if table == "orders":
            return orders.orders_table(self._orders(m))
        if table == "order_line_items":
            return orders.lines_table(self._orders(m), self.catalog)
        if table == "order_refund_line_items":
            return orders.refunds_table(self._orders(m))
        if table == "customers":
            return self._customers(m)
        if dataset == "raw_ga4":
            return self._ga4(m, table)
        part = {"campaign_daily": "campaign", "shopping_product_daily": "shopping",
                "keyword_daily": "keyword", "search_term_daily": "search_term"}[table]
        return getattr(self._ads(m), part)

    def ground_truth(self) -> list[PlantedSituation]:
        return ground_truth(self) if self.incidents else []

    def planted_incidents(self) -> list[PlantedSituation]:
        """The planted business-alert incidents (kind = alert type, detail["date"] = the day an
        alert must cover), one per type (incidents.py); none without incidents."""
        return incidents(self) if self.incidents else []

    # --- dimension tables ---
    def _products(self) -> pa.Table:
        cat = self.catalog
        n = len(cat.product_id)
        return build("raw_shop", "products", {
            "id": pa.array(cat.product_id), "title": cat.title, "handle": cat.handle,
            "product_type": strings(CATEGORY_NAMES, cat.category), "vendor": strings(words.VENDORS, cat.vendor),
            "status": strings(["active"], np.zeros(n, np.int64)), "created_at": ts(cat.product_created),
            "updated_at": ts(cat.product_updated), "published_at": ts(cat.product_created + US_PER_DAY),
        })

    def _product_variants(self) -> pa.Table:
        cat = self.catalog
        n = cat.n_variants
        return build("raw_shop", "product_variants", {
            "id": pa.array(cat.variant_id), "product_id": pa.array(cat.product_id[cat.product]),
            "title": cat.variant_title, "sku": cat.sku, "price": money(cat.price),
            "compare_at_price": money(cat.compare_at, cat.has_compare),
            "inventory_policy": strings(["continue", "deny"], cat.deny.astype(np.int64)),
            "inventory_management": strings(["shopify"], np.zeros(n, np.int64)),
            "inventory_item_id": pa.array(cat.inventory_item_id),
            "inventory_quantity": pa.array(self.stock.sum(axis=1)),
            "created_at": ts(cat.product_created[cat.product]), "updated_at": ts(self._variant_updated),
        })

    @cached_property
    def _variant_updated(self) -> np.ndarray:
        """Last edit of a variant: no earlier than its last price change."""
        ph = self.prices
        last = np.zeros(self.catalog.n_variants, np.int64)
        np.maximum.at(last, ph.variant, ph.valid_from)
        return np.maximum(self.catalog.variant_updated, last)

    def _inventory_items(self) -> pa.Table:
        cat = self.catalog
        return build("raw_shop", "inventory_items", {
            "id": pa.array(cat.inventory_item_id), "sku": cat.sku, "cost": money(cat.cost),
            "tracked": pa.array(np.ones(cat.n_variants, bool)),
            "created_at": ts(cat.product_created[cat.product]), "updated_at": ts(cat.variant_updated),
        })

    def _inventory_levels(self) -> pa.Table:
        cat, stock, h = self.catalog, self.stock, self.stock_history
        n_v, n_l = stock.shape
        v, loc = np.repeat(np.arange(n_v), n_l), np.tile(np.arange(n_l), n_v)
        changed = np.zeros(n_v * n_l, np.int64)  # the level was last set by the last history row
        changed[h.series] = h.day  # rows are sorted by day within a series: the last one wins
        return build("raw_shop", "inventory_levels", {
            "inventory_item_id": pa.array(cat.inventory_item_id[v]), "location_id": pa.array(cat.location_id[loc]),
            "available": pa.array(stock.ravel()), "updated_at": ts(changed * US_PER_DAY + END_OF_DAY),
        })

    def _locations(self) -> pa.Table:
        cat = self.catalog
        n = len(cat.location_id)
        created = np.full(n, self._start_us - 600 * US_PER_DAY) + np.arange(n) * 90 * US_PER_DAY
        return build("raw_shop", "locations", {
            "id": pa.array(cat.location_id), "name": pa.array(cat.location_name),
            "country_code": pa.array(cat.location_country), "active": pa.array(np.ones(n, bool)),
            "created_at": ts(created), "updated_at": ts(created + 30 * US_PER_DAY),
        })

    def _variant_price_history(self) -> pa.Table:
        cat, ph = self.catalog, self.prices
        return build("raw_shop", "variant_price_history", {
            "variant_id": pa.array(cat.variant_id[ph.variant]), "price": money(ph.price),
            "compare_at_price": money(ph.compare_at, ph.has_compare), "valid_from": ts(ph.valid_from),
        })

    def _history_chunks(self) -> Iterator[pa.Table]:
        cat, h = self.catalog, self.stock_history
        n_l = h.n_locations
        for start in range(0, max(len(h.series), 1), HISTORY_CHUNK):
            s = h.series[start:start + HISTORY_CHUNK]
            yield build("raw_shop", "inventory_level_history", {
                "inventory_item_id": pa.array(cat.inventory_item_id[s // n_l]),
                "location_id": pa.array(cat.location_id[s % n_l]),
                "available": pa.array(h.level[start:start + HISTORY_CHUNK]),
                "valid_from": ts(h.day[start:start + HISTORY_CHUNK].astype(np.int64) * US_PER_DAY + END_OF_DAY),
            })

    def _app_events(self) -> pa.Table:
        a = self.calendar.as_of
        planted = [(opportunity_id(self.tenant, kind, entity), a - LIVE_FOR.get(kind, 400))
                   for kind, _, entity in planted_entities(self) if kind in LIVE_FOR]
        first = {kind: opportunity_id(self.tenant, kind, entity)  # the first planted of each kind
                 for kind, _, entity in reversed(planted_entities(self))}
        rows = app.app_events(self._rng("app"), a, planted, first.get("wasted_search_term"),
                              first.get("campaign_below_target_roas")) if self.incidents else []
        t, user, event, opp = (list(x) for x in zip(*rows)) if rows else ([], [], [], [])
        return build("raw_app", "app_events", {
            "ts": ts(np.array(t, np.int64)), "user_id": pa.array(user, pa.string()),
            "event": pa.array(event, pa.string()), "opportunity_id": pa.array(opp, pa.string()),
        })

    def _customers(self, m: int) -> pa.Table:
        """Customers whose first order falls in month m."""
        cal, stats = self.calendar, self._customer_stats
        idx = np.arange(cal.customer_offset[m], cal.customer_offset[m] + cal.new_customers[m])
        state = self._rng("customers", m).choice(3, len(idx), p=[0.55, 0.40, 0.05])
        who = shopper_identity(idx)
        return build("raw_shop", "customers", {
            "created_at": ts(stats["created"][idx]), "updated_at": ts(stats["updated"][idx]),
            "orders_count": pa.array(stats["count"][idx]), "total_spent": money(stats["spent"][idx]),
            "state": strings(["disabled", "enabled", "invited"], state),
            "currency": strings(["USD"], np.zeros(len(idx), np.int64)),
            "id": pa.array(customer_ids(idx)), **who,
        })


def _pick(rng: np.random.Generator, candidates: np.ndarray, k: int) -> np.ndarray:
    """k random candidates (fewer if there are fewer), sorted."""
    return np.sort(rng.choice(candidates, min(k, len(candidates)), replace=False)).astype(np.int64)
