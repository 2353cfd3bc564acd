"""Ground truth: the planted situations and their expected impact.

Impacts use the opportunity rules' own formulas, evaluated as of `as_of` on the
generated data. Windows: "last N days" are the N days ending at as_of, inclusive.
Shop revenue is that of counted orders (neither test nor cancelled), net of
discounts, gross of refunds: variant revenue sums line price x quantity minus the
line's discount; daily revenue sums orders' subtotal_price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

if TYPE_CHECKING:
    from .generator import DemoShop

TARGET_ROAS = 4.0
LEAD_TIME = 14


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
            + _items(shop) + _revenue_drop(shop))


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
        item = f"shopify_US_{cat.product_id[cat.product[v]]}_{cat.variant_id[v]}"
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
    from .ads import CAMPAIGN_ID0

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
