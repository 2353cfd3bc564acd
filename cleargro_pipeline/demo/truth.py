"""Ground truth: the planted situations and their expected impact.

Impacts use the opportunity rules' own formulas, evaluated as of `as_of` on the
generated data. Windows: "last N days" are the N days ending at as_of, inclusive.
Shop revenue is that of counted orders (neither test nor cancelled), net of
discounts, gross of refunds: variant revenue sums line price x quantity minus the
line's discount; daily revenue sums orders' subtotal_price.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from .ads import CAMPAIGN_ID0

if TYPE_CHECKING:  # generator.py imports this module: the type only, never at run time
    from .generator import DemoShop

TARGET_ROAS = 4.0
LEAD_TIME = 14


def opportunity_id(tenant: str, kind: str, entity_id: str) -> str:
    """The opportunity id the insights models give (type, entity) in a tenant."""
    return hashlib.md5(f"{tenant}|{kind}|{entity_id}".encode()).hexdigest()


@dataclass(frozen=True)
class PlantedSituation:
    kind: str
    entity_type: str
    entity_id: str
    expected_impact: float
    detail: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):  # plain Python numbers: numpy scalars leak into JSON and reprs
        object.__setattr__(self, "expected_impact", float(self.expected_impact))
        object.__setattr__(self, "detail", {k: _plain(v) for k, v in self.detail.items()})


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def window(shop: DemoShop, dataset: str, table: str, n_days: int, date_col: str) -> pl.DataFrame:
    """The last n_days of a monthly table (only the months that cover them are generated)."""
    chunks = [shop.month_chunk(dataset, table, m) for m in shop._months_covering(n_days)]
    df = pl.from_arrow(pa.concat_tables(chunks))
    return df.filter(pl.col(date_col) > shop.as_of - timedelta(days=n_days))


def ground_truth(shop: DemoShop) -> list[PlantedSituation]:
    return (_stock(shop) + _keywords(shop) + _search_terms(shop) + _campaigns(shop)
            + _items(shop) + _revenue_drop(shop) + _stockouts(shop) + _overstock(shop) + _declining(shop)
            + _refunds(shop) + _losing_ads(shop) + _price_rises(shop))


def planted_entities(shop: DemoShop) -> list[tuple[str, str, str]]:
    """(kind, entity_type, entity_id) of every planted situation, straight from the plan."""
    if not shop.incidents:
        return []
    plan, lay = shop.plan, shop.ads_layout
    variant_kinds = [("ads_on_out_of_stock", plan.oos), ("bestseller_low_stock", plan.low_stock),
                     ("stockout_lost_sales", plan.stockout), ("overstock_slow_mover", plan.overstock),
                     ("declining_product", plan.declining), ("high_refund_rate_product", plan.faulty),
                     ("negative_margin_ads_product", plan.losing),
                     ("price_change_conversion_drop", plan.price_rise)]
    out = [(kind, "variant", _sku(shop, v)) for kind, vs in variant_kinds for v in vs]
    out += [("wasted_keyword", "keyword", lay.kw_text[k]) for k in plan.ads.wasted_keywords]
    out += [("wasted_search_term", "search_term", t) for t in plan.ads.wasted_term_texts]
    out += [("campaign_below_target_roas", "campaign", str(CAMPAIGN_ID0 + c)) for c in plan.ads.below_target]
    out += [("budget_limited_profitable_campaign", "campaign", str(CAMPAIGN_ID0 + c))
            for c in plan.ads.budget_limited]
    out += [("high_traffic_low_conversion_product", "item", _sku(shop, v)) for v in plan.low_conversion]
    if shop.calendar.outage_hour is not None:
        out.append(("revenue_drop", "shop", "shop"))
    return out


def _sku(shop, v) -> str:
    return shop.catalog.sku[int(v)].as_py()


def _stock(shop) -> list[PlantedSituation]:
    cat, rec, plan, out = shop.catalog, shop.recent, shop.plan, []
    spend = (window(shop, "raw_google_ads", "shopping_product_daily", 7, "segments.date")
             .group_by("segments.product_item_id")
             .agg(spend_7d=pl.col("metrics.cost_micros").sum() / 1e6,
                  spend_3d=pl.col("metrics.cost_micros").filter(
                      pl.col("segments.date") > shop.as_of - timedelta(days=3)).sum() / 1e6))
    spend = {r["segments.product_item_id"]: r for r in spend.iter_rows(named=True)}
    for v in plan.oos:
        item = f"shopify_us_{cat.product_id[cat.product[v]]}_{cat.variant_id[v]}"
        s = spend[item]
        out.append(PlantedSituation("ads_on_out_of_stock", "variant", _sku(shop, v), s["spend_7d"] / 7 * 30,
                                    {"variant_id": int(cat.variant_id[v]), "product_item_id": item,
                                     "available": int(shop.stock[v].sum()), "spend_3d": s["spend_3d"],
                                     "spend_7d": s["spend_7d"]}))
    for v in plan.low_stock:
        units, revenue = rec.units_28[v], rec.revenue_28[v] / 100
        available = int(shop.stock[v].sum())
        cover = available / (units / 28)
        margin = (revenue - units * cat.cost[v] / 100) / 28
        out.append(PlantedSituation("bestseller_low_stock", "variant", _sku(shop, v), (LEAD_TIME - cover) * margin,
                                    {"variant_id": int(cat.variant_id[v]), "available": available,
                                     "units_28d": int(units), "revenue_28d": revenue,
                                     "days_of_cover": cover, "daily_margin": margin}))
    return out


def _account(shop) -> dict:
    c = window(shop, "raw_google_ads", "campaign_daily", 30, "segments.date")
    return {"spend": c["metrics.cost_micros"].sum() / 1e6,
            "conversion_rate": c["metrics.conversions"].sum() / c["metrics.clicks"].sum()}


def _keywords(shop) -> list[PlantedSituation]:
    lay, acct = shop.ads_layout, _account(shop)
    kw = (window(shop, "raw_google_ads", "keyword_daily", 30, "segments.date")
          .group_by("ad_group_criterion.keyword.text")
          .agg(pl.col("metrics.cost_micros").sum() / 1e6, pl.col("metrics.clicks").sum(),
               pl.col("metrics.conversions").sum()))
    rows = {r["ad_group_criterion.keyword.text"]: r for r in kw.iter_rows(named=True)}
    threshold = max(10.0, 3 / acct["conversion_rate"])
    out = []
    for k in shop.plan.ads.wasted_keywords:
        r = rows[lay.kw_text[k]]
        out.append(PlantedSituation("wasted_keyword", "keyword", lay.kw_text[k], r["metrics.cost_micros"],
                                    {"clicks_30d": r["metrics.clicks"], "click_threshold": threshold,
                                     "conversions_30d": r["metrics.conversions"]}))
    return out


def _search_terms(shop) -> list[PlantedSituation]:
    acct = _account(shop)
    st = (window(shop, "raw_google_ads", "search_term_daily", 30, "segments.date")
          .group_by("search_term_view.search_term")
          .agg(pl.col("metrics.cost_micros").sum() / 1e6, pl.col("metrics.clicks").sum(),
               pl.col("metrics.conversions").sum()))
    rows = {r["search_term_view.search_term"]: r for r in st.iter_rows(named=True)}
    out = []
    for text in shop.plan.ads.wasted_term_texts:
        r = rows[text]
        out.append(PlantedSituation("wasted_search_term", "search_term", text, r["metrics.cost_micros"],
                                    {"clicks_30d": r["metrics.clicks"],
                                     "share_of_account_spend": r["metrics.cost_micros"] / acct["spend"]}))
    return out


def _campaigns(shop) -> list[PlantedSituation]:
    c = window(shop, "raw_google_ads", "campaign_daily", 30, "segments.date")
    recent = c.filter(pl.col("segments.date") > shop.as_of - timedelta(days=14))
    out = []
    for idx in shop.plan.ads.below_target:
        row = c.filter(pl.col("campaign.id") == CAMPAIGN_ID0 + idx)
        spend, value = row["metrics.cost_micros"].sum() / 1e6, row["metrics.conversions_value"].sum()
        out.append(PlantedSituation("campaign_below_target_roas", "campaign", str(CAMPAIGN_ID0 + idx),
                                    spend - value / TARGET_ROAS,
                                    {"name": row["campaign.name"][0], "spend_30d": spend,
                                     "conversions_value_30d": value, "roas_30d": value / spend}))
    for idx in shop.plan.ads.budget_limited:
        row = c.filter(pl.col("campaign.id") == CAMPAIGN_ID0 + idx)
        spend, value = row["metrics.cost_micros"].sum() / 1e6, row["metrics.conversions_value"].sum()
        lost = recent.filter(pl.col("campaign.id") == CAMPAIGN_ID0 + idx)[
            "metrics.search_budget_lost_impression_share"].mean()
        out.append(PlantedSituation("budget_limited_profitable_campaign", "campaign", str(CAMPAIGN_ID0 + idx),
                                    value * lost / (1 - lost),
                                    {"name": row["campaign.name"][0], "roas_30d": value / spend,
                                     "lost_budget_share_14d": lost, "conversions_value_30d": value}))
    return out


def _items(shop) -> list[PlantedSituation]:
    it = (window(shop, "raw_ga4", "items_daily", 30, "date").group_by("itemId")
          .agg(pl.col("itemsViewed").sum(), pl.col("itemsPurchased").sum(), pl.col("itemRevenue").sum())
          .with_columns(rate=pl.col("itemsPurchased") / pl.col("itemsViewed")))
    median = it.filter(pl.col("itemsViewed") >= 200)["rate"].median()
    rows = {r["itemId"]: r for r in it.iter_rows(named=True)}
    out = []
    for v in shop.plan.low_conversion:
        r = rows[_sku(shop, v)]
        price = r["itemRevenue"] / r["itemsPurchased"]
        out.append(PlantedSituation("high_traffic_low_conversion_product", "item", r["itemId"],
                                    r["itemsViewed"] * (median - r["rate"]) * price,
                                    {"views_30d": r["itemsViewed"], "rate": r["rate"],
                                     "median_rate": median, "mean_price": price}))
    return out


def _revenue_drop(shop) -> list[PlantedSituation]:
    cal, daily = shop.calendar, shop.recent.daily_revenue
    if cal.outage_hour is None:
        return []
    observed = daily[cal.as_of] / 100
    expected = float(np.mean([daily[cal.as_of - 7 * k] for k in range(1, 5)])) / 100
    return [PlantedSituation("revenue_drop", "shop", "shop", expected - observed,
                             {"date": shop.as_of.isoformat(), "expected": expected, "observed": observed,
                              "expected_basis": "mean revenue of the same weekday over the previous 4 weeks",
                              "cause": f"checkout outage from {cal.outage_hour:02d}:00 UTC"})]


# --- business-alert incidents (incidents.py) ----------------------------------------

BASELINE_WEEKS = 8  # the alert rules' baseline: the same weekday over the previous 8 weeks
ROAS_PREVIOUS = 28


def incidents(shop: DemoShop) -> list[PlantedSituation]:
    """One planted incident per business-alert type: kind = alert type, entity 'shop' (the SKU
    for bestseller_stockout), detail["date"] = the day an alert episode must cover; observed and
    expected as the alert rules define them (dbt_project/models/alerts/README.md), the impact
    is expected - observed (a spike's is observed - expected)."""
    inc = shop.alert_incidents
    if inc is None:
        return []
    daily = _daily_shop(shop, 130)
    out = []
    for kind, metric, day, cause in (
            ("revenue_drop", "revenue", shop.calendar.as_of,
             f"checkout outage from {shop.calendar.outage_hour:02d}:00 UTC"),
            ("orders_drop", "orders", inc.orders_day,
             f"payment fault: {inc.orders_keep:.0%} of the day's orders went through"),
            ("sessions_drop", "sessions", inc.sessions_day,
             f"GA4 tracking fault: {inc.sessions_keep:.0%} of the day's sessions recorded"),
            ("conversion_rate_drop", "conversion_rate", inc.bots_day,
             f"bot traffic: {inc.bots_extra:.2f} x the day's sessions on top, none buying")):
        observed, expected, score = _against_baseline(daily, metric, day)
        out.append(PlantedSituation(kind, "shop", "shop", expected - observed,
                                    {"date": _iso(day), "metric": metric, "observed": observed,
                                     "expected": expected, "change": observed / expected - 1,
                                     "robust_score": score, "cause": cause}))
    day = shop.spike_day
    spend, expected, score = _against_baseline(daily, "ad_spend", day)
    revenue, revenue_expected, _ = _against_baseline(daily, "revenue", day)
    out.append(PlantedSituation("ad_spend_spike_without_revenue", "shop", "shop", spend - expected,
                                {"date": _iso(day), "metric": "ad_spend", "observed": spend, "expected": expected,
                                 "change": spend / expected - 1, "revenue": revenue,
                                 "revenue_expected": revenue_expected,
                                 "revenue_change": revenue / revenue_expected - 1,
                                 "cause": f"bidding fault: {inc.spike_factor:.2f} x the planned spend"}))
    day = inc.roas_last
    d = dict(zip(daily["day"], zip(daily["ad_spend"], daily["ad_value"])))
    last = [d[x] for x in range(day - 6, day + 1)]
    previous = [d[x] for x in range(day - 6 - ROAS_PREVIOUS, day - 6)]
    roas_7 = sum(v for _, v in last) / sum(c for c, _ in last)
    roas_28 = sum(v for _, v in previous) / sum(c for c, _ in previous)
    out.append(PlantedSituation("roas_drop", "shop", "shop", roas_28 - roas_7,
                                {"date": _iso(day), "metric": "roas_7d", "observed": roas_7, "expected": roas_28,
                                 "ratio": roas_7 / roas_28, "from": _iso(inc.roas_first),
                                 "cause": f"{inc.roas_keep:.0%} of Ads conversions recorded for 7 days"}))
    out += _bestseller_stockout(shop)
    return out


def incident_days(shop: DemoShop) -> list[tuple[str, str, date]]:
    """(alert type, entity id, day) of every planted incident."""
    return [(p.kind, p.entity_id, date.fromisoformat(p.detail["date"])) for p in shop.planted_incidents()]


def _daily_shop(shop, n: int) -> dict[str, list]:
    """Per day of the last n (day numbers): counted orders, their revenue (subtotal), GA4
    sessions, Ads spend and conversion value."""
    a = shop.calendar.as_of
    days = list(range(a - n + 1, a + 1))
    orders, revenue = dict.fromkeys(days, 0), dict.fromkeys(days, 0.0)
    for m in shop._months_covering(n):
        om = shop._orders(m)
        sel = om.counted() & (om.day > a - n)
        for d, c, r in zip(*np.unique(om.day[sel], return_counts=True), _sum_by(om.day[sel], om.subtotal[sel])):
            orders[int(d)], revenue[int(d)] = int(c), r / 100
    traffic = window(shop, "raw_ga4", "traffic_daily", n, "date").group_by("date").agg(pl.col("sessions").sum())
    ads = (window(shop, "raw_google_ads", "campaign_daily", n, "segments.date").group_by("segments.date")
           .agg(spend=pl.col("metrics.cost_micros").sum() / 1e6, value=pl.col("metrics.conversions_value").sum()))
    epoch = date(1970, 1, 1)
    sessions = {(d - epoch).days: s for d, s in traffic.iter_rows()}
    spend = {(d - epoch).days: (s, v) for d, s, v in ads.iter_rows()}
    return {"day": days, "orders": [orders[d] for d in days], "revenue": [revenue[d] for d in days],
            "sessions": [sessions.get(d, 0) for d in days],
            "conversion_rate": [orders[d] / sessions[d] if sessions.get(d) else None for d in days],
            "ad_spend": [spend.get(d, (0.0, 0.0))[0] for d in days],
            "ad_value": [spend.get(d, (0.0, 0.0))[1] for d in days]}


def _sum_by(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(keys, return_inverse=True)
    return np.bincount(inverse, weights=values)


def _against_baseline(daily: dict[str, list], metric: str, day: int) -> tuple[float, float, float]:
    """The day's value, the median of the same weekday over the previous 8 weeks, and the
    robust score 0.6745 x (value - median) / MAD."""
    series = dict(zip(daily["day"], daily[metric]))
    base = np.array([series[day - 7 * k] for k in range(1, BASELINE_WEEKS + 1)], float)
    median = float(np.median(base))
    mad = float(np.median(np.abs(base - median)))
    value = float(series[day])
    return value, median, 0.6745 * (value - median) / mad if mad else float("-inf")


def _bestseller_stockout(shop) -> list[PlantedSituation]:
    plan, cat = shop.plan, shop.catalog
    if not len(plan.bestseller_stockout):
        return []
    day = shop.alert_incidents.stockout_day
    revenue = np.zeros(cat.n_variants)  # the 28 days ending on the day
    for m in shop._months_covering(shop.calendar.as_of - day + 28):
        om = shop._orders(m)
        d = om.day[om.line_order]
        sel = om.counted()[om.line_order] & (d > day - 28) & (d <= day)
        revenue += np.bincount(om.variant[sel], weights=om.line_net()[sel], minlength=cat.n_variants)
    sellers = int((revenue > 0).sum())
    out = []
    for v in plan.bestseller_stockout:
        stock = shop.stock_history.daily([v], day - 1, day + 2)[0]
        rank = int((revenue > revenue[v]).sum()) + 1
        out.append(PlantedSituation("bestseller_stockout", "variant", _sku(shop, v), revenue[v] / 100 / 28,
                                    {"date": _iso(day), "variant_id": int(cat.variant_id[v]),
                                     "revenue_28d": revenue[v] / 100, "revenue_rank": rank, "sellers_28d": sellers,
                                     "stock_from_day_before": [int(x) for x in stock],
                                     "cause": "sold its last unit on the day, restocked two days later"}))
    return out


# --- the variant rules on shop history -------------------------------------------

@dataclass
class _Days:
    """Per planted variant and day (columns: as_of - n + 1 .. as_of), from counted orders."""
    revenue: np.ndarray  # dollars, net of line discounts
    units: np.ndarray
    refunded_units: np.ndarray  # by the order's day
    refunds: np.ndarray  # dollars


def _days(shop, variants, n: int) -> _Days:
    first = shop.calendar.as_of - n + 1
    row = {int(v): i for i, v in enumerate(variants)}
    out = _Days(*(np.zeros((len(variants), n)) for _ in range(4)))
    for m in shop._months_covering(n):
        om = shop._orders(m)
        day = om.day[om.line_order]
        sel = om.counted()[om.line_order] & (day >= first) & np.isin(om.variant, variants)
        rows = np.array([row[int(v)] for v in om.variant[sel]], np.int64)
        np.add.at(out.revenue, (rows, day[sel] - first), om.line_net()[sel] / 100)
        np.add.at(out.units, (rows, day[sel] - first), om.qty[sel])
        r = sel[om.refund_line]
        lines = om.refund_line[r]
        rows = np.array([row[int(v)] for v in om.variant[lines]], np.int64)
        np.add.at(out.refunded_units, (rows, day[lines] - first), om.refund_qty[r])
        np.add.at(out.refunds, (rows, day[lines] - first), om.refund_subtotal[r] / 100)
    return out


def _stockouts(shop) -> list[PlantedSituation]:
    plan, a, out = shop.plan, shop.calendar.as_of, []
    if not len(plan.stockout):
        return out
    stock = shop.stock_history.daily(plan.stockout, a - 59, a)
    sales = _days(shop, plan.stockout, 60)
    for i, v in enumerate(plan.stockout):
        zero_30 = int((stock[i, -30:] <= 0).sum())
        in_stock = stock[i] > 0
        per_day = sales.revenue[i, in_stock].sum() / in_stock.sum()
        first, last = plan.stockout_days[int(v)]
        out.append(PlantedSituation("stockout_lost_sales", "variant", _sku(shop, v), zero_30 * per_day,
                                    {"variant_id": int(shop.catalog.variant_id[v]), "zero_stock_days_30d": zero_30,
                                     "revenue_per_in_stock_day_60d": per_day,
                                     "no_sales_from": _iso(first), "no_sales_to": _iso(last)}))
    return out


def _overstock(shop) -> list[PlantedSituation]:
    cat, out = shop.catalog, []
    for v in shop.plan.overstock:
        units = int(shop.stock[v].sum())
        value = units * cat.cost[v] / 100
        out.append(PlantedSituation("overstock_slow_mover", "variant", _sku(shop, v), value,
                                    {"variant_id": int(cat.variant_id[v]), "available": units,
                                     "unit_cost": cat.cost[v] / 100, "units_90d": int(shop.recent.units_90[v])}))
    return out


def _declining(shop) -> list[PlantedSituation]:
    plan, out = shop.plan, []
    if not len(plan.declining):
        return out
    sales = _days(shop, plan.declining, 56)
    for i, v in enumerate(plan.declining):
        previous, last = sales.revenue[i, :28].sum(), sales.revenue[i, 28:].sum()
        out.append(PlantedSituation("declining_product", "variant", _sku(shop, v), (previous - last) * 30 / 28,
                                    {"variant_id": int(shop.catalog.variant_id[v]), "revenue_previous_28d": previous,
                                     "revenue_last_28d": last}))
    return out


def _refunds(shop) -> list[PlantedSituation]:
    plan, out = shop.plan, []
    if not len(plan.faulty):
        return out
    sales = _days(shop, plan.faulty, 90)
    shop_rate = _shop_refund_rate(shop, 90)
    for i, v in enumerate(plan.faulty):
        back, sold = sales.refunded_units[i].sum(), sales.units[i].sum()
        out.append(PlantedSituation("high_refund_rate_product", "variant", _sku(shop, v),
                                    sales.refunds[i].sum() * 30 / 90,
                                    {"variant_id": int(shop.catalog.variant_id[v]), "refunded_units_90d": int(back),
                                     "units_sold_90d": int(sold), "refund_rate": back / sold,
                                     "shop_refund_rate": shop_rate}))
    return out


def _shop_refund_rate(shop, n: int) -> float:
    a, back, sold = shop.calendar.as_of, 0, 0
    for m in shop._months_covering(n):
        om = shop._orders(m)
        sel = om.counted()[om.line_order] & (om.day[om.line_order] > a - n)
        sold += om.qty[sel].sum()
        back += om.refund_qty[sel[om.refund_line]].sum()
    return back / sold


def _losing_ads(shop) -> list[PlantedSituation]:
    cat, out = shop.catalog, []
    if not len(shop.plan.losing):
        return out
    ads = (window(shop, "raw_google_ads", "shopping_product_daily", 30, "segments.date")
           .group_by("segments.product_item_id")
           .agg(spend=pl.col("metrics.cost_micros").sum() / 1e6, value=pl.col("metrics.conversions_value").sum()))
    rows = {r["segments.product_item_id"]: r for r in ads.iter_rows(named=True)}
    for v in shop.plan.losing:
        r = rows[f"shopify_us_{cat.product_id[cat.product[v]]}_{cat.variant_id[v]}"]
        margin = (cat.price[v] - cat.cost[v]) / cat.price[v]
        out.append(PlantedSituation("negative_margin_ads_product", "variant", _sku(shop, v),
                                    r["spend"] - r["value"] * margin,
                                    {"variant_id": int(cat.variant_id[v]), "spend_30d": r["spend"],
                                     "conversions_value_30d": r["value"], "margin_rate": margin}))
    return out


def _price_rises(shop) -> list[PlantedSituation]:
    plan, cat, a, out = shop.plan, shop.catalog, shop.calendar.as_of, []
    if not len(plan.price_rise):
        return out
    items = window(shop, "raw_ga4", "items_daily", 60, "date")
    for v in plan.price_rise:
        day, pct = plan.rises[int(v)]
        d = _date(day)
        it = items.filter(pl.col("itemId") == _sku(shop, v))
        before = it.filter((pl.col("date") >= d - timedelta(days=30)) & (pl.col("date") < d))
        after = it.filter(pl.col("date") >= d)
        vb, va = before["itemsViewed"].sum(), after["itemsViewed"].sum()
        rb, ra = before["itemsPurchased"].sum() / vb, after["itemsPurchased"].sum() / va
        days_after = a - day + 1
        out.append(PlantedSituation("price_change_conversion_drop", "variant", _sku(shop, v),
                                    (rb - ra) * (va / days_after * 30) * cat.price[v] / 100,
                                    {"variant_id": int(cat.variant_id[v]), "rise_date": d.isoformat(),
                                     "rise_pct": pct, "new_price": cat.price[v] / 100, "views_before": int(vb),
                                     "views_after": int(va), "rate_before": rb, "rate_after": ra}))
    return out


def _date(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=int(day))


def _iso(day: int) -> str:
    return _date(day).isoformat()
