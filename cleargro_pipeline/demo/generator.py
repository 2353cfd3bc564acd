"""The embedded demo shop: deterministic, seeded, columnar, streamed in chunks.

Every chunk draws from its own RNG, derived from (seed, stream, chunk index) with
numpy's SeedSequence, so a table's bytes never depend on what was iterated before.
Dimension data (catalogue, calendar, ads layout, planted situations, stock) is
generated once and cached on the object; fact tables are generated per month.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Iterator

import numpy as np
import pyarrow as pa

from cleargro_pipeline.sources.contract import TABLES

from . import ads, ga4, orders, words
from .calendar import HOUR, OUTAGE_KEEP, Calendar, build_calendar
from .catalog import CATEGORY_NAMES, Catalog, build_catalog, customer_ids, shopper_identity, size_spec
from .columns import US_PER_DAY, US_PER_HOUR, build, delivered_schema, money, strings, ts
from .truth import PlantedSituation, ground_truth

MONTHLY = {("raw_shop", "orders"), ("raw_shop", "order_line_items"), ("raw_shop", "order_refund_line_items"),
           ("raw_shop", "customers"), ("raw_ga4", "items_daily"), ("raw_ga4", "traffic_daily"),
           ("raw_google_ads", "campaign_daily"), ("raw_google_ads", "shopping_product_daily"),
           ("raw_google_ads", "keyword_daily"), ("raw_google_ads", "search_term_daily")}
DIMENSION_CHUNK = 100_000


@dataclass
class RecentSales:
    """Per-variant sales of counted orders (not test, not cancelled) up to as_of."""
    units_28: np.ndarray
    revenue_28: np.ndarray  # cents, net of line discounts
    units_3: np.ndarray
    units_30: np.ndarray
    daily_revenue: dict[int, int]  # day -> subtotal cents, last 30 days

    def top_share(self, share: float = 0.2) -> np.ndarray:
        """Variants in the top `share` by 28-day revenue, among those that sold."""
        sellers = int((self.revenue_28 > 0).sum())
        order = np.argsort(-self.revenue_28, kind="stable")
        return order[: int(np.ceil(share * sellers))]


@dataclass
class Plan:
    oos: np.ndarray  # variant indexes: out of stock but still advertised
    low_stock: np.ndarray  # bestsellers about to run out
    low_conversion: np.ndarray  # much-viewed, rarely bought items
    ads: ads.AdsPlan


class DemoShop:
    def __init__(self, size: str = "small", seed: int = 7, end_date: date = date(2026, 11, 27),
                 incidents: bool = True):
        self.spec = size_spec(size)
        self.size, self.seed, self.incidents = size, seed, incidents
        self.as_of: date = end_date
        self._orders_lru: OrderedDict[int, orders.OrdersMonth] = OrderedDict()
        self._ads_lru: OrderedDict[int, ads.AdsMonth] = OrderedDict()

    # --- RNG streams ---
    def _rng(self, stream: str, chunk: int = 0) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(stream.encode()), chunk]))

    # --- cached dimension data ---
    @cached_property
    def calendar(self) -> Calendar:
        return build_calendar(self._rng("calendar"), self.as_of, self.spec.orders, self.incidents)

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

    @cached_property
    def recent(self) -> RecentSales:
        as_of, n_v = self.calendar.as_of, self.catalog.n_variants
        acc = {k: np.zeros(n_v) for k in ("units_28", "revenue_28", "units_3", "units_30")}
        daily: dict[int, int] = {}
        for m in self._months_covering(30):
            om = self._orders(m)
            counted = om.counted()
            lines = counted[om.line_order]
            day = om.day[om.line_order]
            for key, n_days in (("units_28", 28), ("units_3", 3), ("units_30", 30)):
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
        empty = np.zeros(0, np.int64)
        if not self.incidents:
            return Plan(empty, empty, empty, ads.AdsPlan())
        rng, k, cat, lay, rec = self._rng("plan"), self.spec.planted, self.catalog, self.ads_layout, self.recent
        top = np.zeros(cat.n_variants, bool)
        top[rec.top_share()] = True
        low_stock = _pick(rng, np.flatnonzero(top & (rec.units_28 >= 28)), k)
        advertised = np.zeros(cat.n_variants, bool)
        advertised[lay.prod_variant] = True
        oos = _pick(rng, np.flatnonzero(advertised & cat.deny & ~top & (rec.units_3 == 0)), k)
        taken = np.isin(np.arange(cat.n_variants), np.r_[low_stock, oos])
        low_conv = _pick(rng, np.flatnonzero((rec.units_30 >= 15) & ~taken), k)

        normal_search = np.isin(lay.kw_campaign, ads.NORMAL_SEARCH)
        wasted = _pick(rng, np.flatnonzero(normal_search), k)
        hosts = np.flatnonzero((lay.kw_campaign == ads.TERM_HOST_CAMPAIGN) & (lay.kw_match == 2)
                               & ~np.isin(np.arange(len(lay.kw_text)), wasted))
        hosts = _pick(rng, hosts, k)
        texts = [words.WASTED_TERM_TEMPLATES[i % len(words.WASTED_TERM_TEMPLATES)].format(kw=lay.kw_text[h])
                 for i, h in enumerate(hosts)]
        ads_plan = ads.AdsPlan(below_target=ads.BELOW_TARGET, budget_limited=ads.BUDGET_LIMITED,
                               wasted_keywords=wasted, wasted_term_hosts=hosts, wasted_term_texts=texts,
                               oos_products=np.searchsorted(lay.prod_variant, oos))
        return Plan(oos=oos, low_stock=low_stock, low_conversion=low_conv, ads=ads_plan)

    @cached_property
    def stock(self) -> np.ndarray:
        """Available units per (variant, location). Non-planted variants hold 40-120 days
        of cover, far above the 14-day lead time; planted bestsellers 2-8; planted
        out-of-stock variants none."""
        rng, rec, plan = self._rng("inventory"), self.recent, self.plan
        n_v, n_l = self.catalog.n_variants, len(self.catalog.location_id)
        daily = rec.units_28 / 28
        total = np.ceil(daily * rng.uniform(40, 120, n_v)).astype(np.int64) + rng.integers(5, 40, n_v)
        total[plan.low_stock] = np.maximum(1, np.floor(daily[plan.low_stock] * rng.uniform(2, 8, len(plan.low_stock))))
        total[plan.oos] = 0
        shares = np.array([0.6, 0.3, 0.1][:n_l])
        return rng.multinomial(total, shares / shares.sum())

    @cached_property
    def item_rate(self) -> np.ndarray:
        return ga4.item_rates(self._rng("ga4_rates"), self.catalog.n_variants, self.plan.low_conversion)

    @cached_property
    def roas(self) -> np.ndarray:
        return ads.campaign_roas(self.ads_layout, self.plan.ads, self._rng("roas"))

    @cached_property
    def _item_ids(self) -> pa.Array:
        return ads.product_item_ids(self.ads_layout, self.catalog)

    @cached_property
    def _customer_stats(self) -> dict[str, np.ndarray]:
        """One pass over every month's orders: customers' first/last order, count, spend."""
        cal = self.calendar
        n = int(cal.customer_offset[-1] + cal.new_customers[-1])
        created = np.full(n, np.iinfo(np.int64).max)
        updated = np.zeros(n, np.int64)
        count, spent = np.zeros(n), np.zeros(n)
        for m in range(len(cal.month_bounds)):
            om = self._orders(m, cache=False)
            np.minimum.at(created, om.customer, om.created)
            np.maximum.at(updated, om.customer, om.updated)
            count += np.bincount(om.customer, weights=(~om.test).astype(float), minlength=n)
            spent += np.bincount(om.customer, weights=np.where(om.counted(), om.total, 0), minlength=n)
        return {"created": created, "updated": updated, "count": count.astype(np.int64),
                "spent": np.round(spent).astype(np.int64)}

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

    def _orders(self, m: int, cache: bool = True) -> orders.OrdersMonth:
        return self._lru(self._orders_lru, m, lambda: orders.generate_month(
            self.catalog, self.calendar, m, self._rng("orders", m)), keep=cache)

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

    def _ads(self, m: int) -> ads.AdsMonth:
        a, b = self.calendar.month_bounds[m]
        return self._lru(self._ads_lru, m, lambda: ads.generate_month(
            self.ads_layout, self.plan.ads, self.roas, self._rng("ads", m), self.calendar.days[a:b],
            self._expected_spend()[a:b], self.calendar.as_of, self._keep_last(), self._item_ids))

    def _ga4(self, m: int, table: str) -> pa.Table:
        a, b = self.calendar.month_bounds[m]
        om, days = self._orders(m), self.calendar.days[a:b]
        # Both reports share which orders GA4 tracked (one stream), then draw their own.
        tracked, channel = ga4.tracked_orders(om, self._rng("ga4_tracking", m))
        if table == "traffic_daily":
            return ga4.traffic_table(om, tracked, channel, self._rng("ga4_traffic", m), days,
                                     self.calendar.demand[a:b])
        return ga4.items_table(om, tracked, self._rng("ga4_items", m), days, self.catalog, self.item_rate)

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
            "created_at": ts(cat.product_created[cat.product]), "updated_at": ts(cat.variant_updated),
        })

    def _inventory_items(self) -> pa.Table:
        cat = self.catalog
        return build("raw_shop", "inventory_items", {
            "id": pa.array(cat.inventory_item_id), "sku": cat.sku, "cost": money(cat.cost),
            "tracked": pa.array(np.ones(cat.n_variants, bool)),
            "created_at": ts(cat.product_created[cat.product]), "updated_at": ts(cat.variant_updated),
        })

    def _inventory_levels(self) -> pa.Table:
        cat, stock = self.catalog, self.stock
        n_v, n_l = stock.shape
        v, loc = np.repeat(np.arange(n_v), n_l), np.tile(np.arange(n_l), n_v)
        rng = self._rng("inventory_levels")
        return build("raw_shop", "inventory_levels", {
            "inventory_item_id": pa.array(cat.inventory_item_id[v]), "location_id": pa.array(cat.location_id[loc]),
            "available": pa.array(stock.ravel()),
            "updated_at": ts(self._cutoff_us - rng.integers(1, 72 * US_PER_HOUR, n_v * n_l)),
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

    # Placeholders until the history and behaviour streams are generated: empty tables.
    def _variant_price_history(self) -> pa.Table:
        return pa.Table.from_pylist([], schema=delivered_schema("raw_shop", "variant_price_history"))

    def _inventory_level_history(self) -> pa.Table:
        return pa.Table.from_pylist([], schema=delivered_schema("raw_shop", "inventory_level_history"))

    def _app_events(self) -> pa.Table:
        return pa.Table.from_pylist([], schema=delivered_schema("raw_app", "app_events"))

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
