"""Reference oracle: the opportunity rules of dbt_project/models/insights/README.md in Polars.

It evaluates every rule over every entity of the tables the demo delivers (nothing from
the generator's internals), so a test can prove that exactly the planted situations fire:
the generator keeps everything else clear by construction. Also the revenue-drop alert
(the last day under half the mean of the same weekday over the previous four weeks).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

if TYPE_CHECKING:
    from .generator import DemoShop

# The dbt vars' defaults (dbt_project.yml).
PARAMS = {
    "target_roas": 4.0, "lead_time_days": 14, "bestseller_top_share": 0.2, "ads_oos_spend_days": 3,
    "stockout_min_days": 3, "wasted_keyword_min_clicks": 10, "wasted_term_min_clicks": 10,
    "wasted_term_min_spend_share": 0.02, "below_target_roas_factor": 0.75, "campaign_min_spend_share": 0.01,
    "budget_lost_share_min": 0.10, "low_conversion_min_views": 200, "low_conversion_rate_factor": 0.5,
    "overstock_min_value": 500, "overstock_max_units_90d": 2, "declining_min_drop": 0.40,
    "declining_min_previous": 1000, "refund_rate_factor": 2.0, "refund_min_count": 5,
    "price_change_min_rate_drop": 0.30, "price_change_min_views": 200,
}
Found = dict[str, dict[str, float]]  # opportunity_type -> entity_id -> impact


# The columns the rules read (load(..., needed_only=True) keeps the large shop in memory).
NEEDED = {
    "product_variants": ["id", "sku", "price", "inventory_policy", "inventory_item_id", "created_at"],
    "inventory_items": ["id", "cost"],
    "inventory_levels": ["inventory_item_id", "location_id", "available", "updated_at"],
    "inventory_level_history": None, "variant_price_history": None,
    "orders": ["id", "test", "cancelled_at", "processed_at", "subtotal_price"],
    "order_line_items": ["id", "order_id", "variant_id", "quantity", "price", "total_discount"],
    "order_refund_line_items": ["line_item_id", "quantity", "subtotal"],
    "items_daily": ["date", "itemId", "itemsViewed", "itemsPurchased", "itemRevenue"],
    "shopping_product_daily": ["segments.date", "segments.product_item_id", "metrics.cost_micros",
                               "metrics.conversions_value"],
    "campaign_daily": None, "keyword_daily": None, "search_term_daily": None,
}


def load(shop: DemoShop, needed_only: bool = False) -> dict[str, pl.DataFrame]:
    """Every delivered table as one Polars frame, money as floats."""
    out = {}
    for dataset, name in shop.table_keys():
        if needed_only and name not in NEEDED:
            continue
        cols = NEEDED.get(name) if needed_only else None
        chunks = [c.select(cols) if cols else c for c in shop.iter_table(dataset, name)]
        out[name] = pl.from_arrow(pa.concat_tables(chunks)).with_columns(pl.col(pl.Decimal).cast(pl.Float64))
    return out


def _window(col: str, as_of: date, n: int) -> pl.Expr:
    """The last n days ending at as_of, inclusive."""
    return (pl.col(col) > as_of - timedelta(days=n)) & (pl.col(col) <= as_of)


def evaluate(t: dict[str, pl.DataFrame], as_of: date, p: dict | None = None) -> Found:
    p = {**PARAMS, **(p or {})}
    found: Found = {}
    v = _variants(t)
    sales = _daily_variant_sales(t)
    stock = _daily_stock(t, v, as_of, 90)
    spend = _product_ads(t)

    # ads_on_out_of_stock
    recent = spend.filter(_window("date", as_of, 7)).group_by("variant_id").agg(
        s7=pl.col("spend").sum(), s3=pl.col("spend").filter(_window("date", as_of, p["ads_oos_spend_days"])).sum())
    oos = (v.filter((pl.col("stock") <= 0) & (pl.col("inventory_policy") == "deny"))
           .join(recent, on="variant_id").filter(pl.col("s3") > 0))
    found["ads_on_out_of_stock"] = _pairs(oos, "sku", pl.col("s7") / 7 * 30)

    # bestseller_low_stock
    s28 = sales.filter(_window("day", as_of, 28)).group_by("variant_id").agg(
        units=pl.col("units").sum(), revenue=pl.col("net_sales").sum())
    sellers = s28.filter(pl.col("revenue") > 0).sort(["revenue", "variant_id"], descending=[True, False])
    top = sellers.head(math.ceil(p["bestseller_top_share"] * sellers.height)).join(v, on="variant_id")
    top = top.with_columns(cover=pl.col("stock") / (pl.col("units") / 28)).filter(pl.col("cover") < p["lead_time_days"])
    found["bestseller_low_stock"] = _pairs(top, "sku", (p["lead_time_days"] - pl.col("cover"))
                                           * (pl.col("revenue") - pl.col("units") * pl.col("cost")) / 28)

    # stockout_lost_sales
    days60 = stock.filter(_window("day", as_of, 60)).join(
        sales.select("variant_id", "day", "net_sales"), on=["variant_id", "day"], how="left").fill_null(0)
    so = days60.group_by("variant_id").agg(
        zero_30=(_window("day", as_of, 30) & (pl.col("stock") <= 0)).sum(),
        in_stock=(pl.col("stock") > 0).sum(),
        in_stock_revenue=pl.col("net_sales").filter(pl.col("stock") > 0).sum())
    so = so.join(v, on="variant_id").filter((pl.col("inventory_policy") == "deny")
                                            & (pl.col("zero_30") >= p["stockout_min_days"]))
    found["stockout_lost_sales"] = _pairs(so, "sku",
                                          pl.col("zero_30") * pl.col("in_stock_revenue") / pl.col("in_stock"))

    # overstock_slow_mover
    u90 = sales.filter(_window("day", as_of, 90)).group_by("variant_id").agg(u90=pl.col("units").sum())
    over = (v.join(u90, on="variant_id", how="left").fill_null(0)
            .filter((pl.col("stock") * pl.col("cost") >= p["overstock_min_value"])
                    & (pl.col("u90") <= p["overstock_max_units_90d"])
                    & (pl.col("created_at").dt.date() <= as_of - timedelta(days=90))))
    found["overstock_slow_mover"] = _pairs(over, "sku", pl.col("stock") * pl.col("cost"))

    # declining_product
    prev = sales.filter((pl.col("day") > as_of - timedelta(days=56)) & (pl.col("day") <= as_of - timedelta(days=28)))
    last = sales.filter(_window("day", as_of, 28))
    always = stock.filter(_window("day", as_of, 56)).group_by("variant_id").agg(
        ok=(pl.col("stock") > 0).all(), n=pl.len())
    dec = (prev.group_by("variant_id").agg(prev=pl.col("net_sales").sum())
           .join(last.group_by("variant_id").agg(last=pl.col("net_sales").sum()), on="variant_id", how="left")
           .fill_null(0).join(always, on="variant_id").join(v, on="variant_id")
           .filter((pl.col("prev") >= p["declining_min_previous"])
                   & (pl.col("last") <= (1 - p["declining_min_drop"]) * pl.col("prev"))
                   & pl.col("ok") & (pl.col("n") == 56)))
    found["declining_product"] = _pairs(dec, "sku", (pl.col("prev") - pl.col("last")) * 30 / 28)

    # high_refund_rate_product
    r90 = sales.filter(_window("day", as_of, 90))
    shop_rate = r90["refunded_units"].sum() / r90["units"].sum()
    ref = (r90.group_by("variant_id")
           .agg(pl.col("units").sum(), pl.col("refunded_units").sum(), pl.col("refunds").sum())
           .filter((pl.col("refunded_units") >= p["refund_min_count"])
                   & (pl.col("refunded_units") / pl.col("units") >= p["refund_rate_factor"] * shop_rate))
           .join(v, on="variant_id"))
    found["high_refund_rate_product"] = _pairs(ref, "sku", pl.col("refunds") * 30 / 90)

    # negative_margin_ads_product
    s30 = spend.filter(_window("date", as_of, 30)).group_by("variant_id").agg(
        pl.col("spend").sum(), pl.col("value").sum())
    neg = (s30.join(v.filter(pl.col("cost").is_not_null()), on="variant_id")
           .with_columns(margin=(pl.col("price") - pl.col("cost")) / pl.col("price"))
           .filter(pl.col("spend") > pl.col("value") * pl.col("margin")))
    found["negative_margin_ads_product"] = _pairs(neg, "sku", pl.col("spend") - pl.col("value") * pl.col("margin"))

    # price_change_conversion_drop
    found["price_change_conversion_drop"] = _price_change(t, v, as_of, p)

    found.update(_ads_rules(t, as_of, p))
    found["high_traffic_low_conversion_product"] = _low_conversion(t, as_of, p)
    found["revenue_drop"] = _revenue_drop(t, as_of)
    return found


def _pairs(df: pl.DataFrame, key: str, impact: pl.Expr) -> dict[str, float]:
    """Entities whose impact is positive (a rule returns only those)."""
    df = df.with_columns(impact=impact).filter(pl.col("impact") > 0)
    return dict(zip(df[key], df["impact"]))


def _variants(t) -> pl.DataFrame:
    stock = t["inventory_levels"].group_by("inventory_item_id").agg(stock=pl.col("available").sum())
    return (t["product_variants"]
            .select(pl.col("id").alias("variant_id"), "sku", "price", "inventory_policy", "inventory_item_id",
                    "created_at")
            .join(t["inventory_items"].select(pl.col("id").alias("inventory_item_id"), "cost"),
                  on="inventory_item_id", how="left")
            .join(stock, on="inventory_item_id", how="left"))


def _daily_variant_sales(t) -> pl.DataFrame:
    """Per variant and UTC order day, non-cancelled non-test orders: units, net sales, and
    the refunds of those orders (by the order's day)."""
    orders = (t["orders"].filter(~pl.col("test") & pl.col("cancelled_at").is_null())
              .select(pl.col("id").alias("order_id"), day=pl.col("processed_at").dt.date()))
    lines = t["order_line_items"].join(orders, on="order_id")
    refunds = (t["order_refund_line_items"].group_by("line_item_id")
               .agg(refunded_units=pl.col("quantity").sum(), refunds=pl.col("subtotal").sum()))
    lines = lines.join(refunds, left_on="id", right_on="line_item_id", how="left").fill_null(0)
    return lines.group_by("variant_id", "day").agg(
        units=pl.col("quantity").sum(),
        net_sales=(pl.col("price") * pl.col("quantity") - pl.col("total_discount")).sum(),
        refunded_units=pl.col("refunded_units").sum(), refunds=pl.col("refunds").sum())


def _daily_stock(t, v: pl.DataFrame, as_of: date, n: int) -> pl.DataFrame:
    """End-of-day stock per variant (summed over locations) on the last n days, from the
    level history plus the current snapshot."""
    rows = pl.concat([
        t["inventory_level_history"].select("inventory_item_id", "location_id", "available",
                                            at=pl.col("valid_from")),
        t["inventory_levels"].select("inventory_item_id", "location_id", "available", at=pl.col("updated_at")),
    ]).with_columns(day=pl.col("at").dt.date()).sort("at")
    rows = rows.group_by("inventory_item_id", "location_id", "day").agg(pl.col("available").last()).sort("day")
    series = rows.select("inventory_item_id", "location_id").unique()
    days = pl.DataFrame({"day": pl.date_range(as_of - timedelta(days=n - 1), as_of, eager=True)})
    grid = series.join(days, how="cross").sort("day")
    levels = grid.join_asof(rows, on="day", by=["inventory_item_id", "location_id"], strategy="backward",
                            check_sortedness=False)  # sorted by day above
    per_item = levels.group_by("inventory_item_id", "day").agg(stock=pl.col("available").fill_null(0).sum())
    return per_item.join(v.select("variant_id", "inventory_item_id"), on="inventory_item_id").drop("inventory_item_id")


def _product_ads(t) -> pl.DataFrame:
    return t["shopping_product_daily"].select(
        date=pl.col("segments.date"),
        variant_id=pl.col("segments.product_item_id").str.extract(r"^shopify_[A-Za-z]{2}_\d+_(\d+)$").cast(pl.Int64),
        spend=pl.col("metrics.cost_micros") / 1e6, value=pl.col("metrics.conversions_value"))


def _price_change(t, v: pl.DataFrame, as_of: date, p: dict) -> dict[str, float]:
    hist = (t["variant_price_history"].sort("variant_id", "valid_from")
            .with_columns(prev=pl.col("price").shift(1).over("variant_id")))
    rises = (hist.filter(pl.col("price") > pl.col("prev")).group_by("variant_id")
             .agg(pl.all().sort_by("valid_from").last())
             .with_columns(d=pl.col("valid_from").dt.date())
             .filter(_window("d", as_of, 30)))
    items = t["items_daily"].join(v.select("variant_id", "sku"), left_on="itemId", right_on="sku")
    j = items.join(rises.select("variant_id", "d", new_price=pl.col("price")), on="variant_id")
    before = (pl.col("date") >= pl.col("d") - timedelta(days=30)) & (pl.col("date") < pl.col("d"))
    after = (pl.col("date") >= pl.col("d")) & (pl.col("date") <= as_of)
    agg = j.group_by("variant_id", "d", "new_price").agg(
        vb=pl.col("itemsViewed").filter(before).sum(), pb=pl.col("itemsPurchased").filter(before).sum(),
        va=pl.col("itemsViewed").filter(after).sum(), pa_=pl.col("itemsPurchased").filter(after).sum())
    agg = (agg.filter((pl.col("vb") >= p["price_change_min_views"]) & (pl.col("va") >= p["price_change_min_views"]))
           .with_columns(rb=pl.col("pb") / pl.col("vb"), ra=pl.col("pa_") / pl.col("va"),
                         n_after=(pl.lit(as_of) - pl.col("d")).dt.total_days() + 1)
           .filter(pl.col("ra") <= (1 - p["price_change_min_rate_drop"]) * pl.col("rb"))
           .join(v.select("variant_id", "sku"), on="variant_id"))
    return _pairs(agg, "sku", (pl.col("rb") - pl.col("ra")) * (pl.col("va") / pl.col("n_after") * 30)
                  * pl.col("new_price"))


def _ads_rules(t, as_of: date, p: dict) -> Found:
    out: Found = {}
    camp = t["campaign_daily"].filter(_window("segments.date", as_of, 30))
    account_spend = camp["metrics.cost_micros"].sum() / 1e6
    account_cr = camp["metrics.conversions"].sum() / camp["metrics.clicks"].sum()
    agg = [(pl.col("metrics.cost_micros").sum() / 1e6).alias("spend"), pl.col("metrics.clicks").sum().alias("clicks"),
           pl.col("metrics.conversions").sum().alias("conv"), pl.col("metrics.conversions_value").sum().alias("value")]
    kw = (t["keyword_daily"].filter(_window("segments.date", as_of, 30))
          .group_by("ad_group_criterion.keyword.text").agg(agg)
          .filter((pl.col("clicks") >= max(p["wasted_keyword_min_clicks"], 3 / account_cr)) & (pl.col("conv") == 0)))
    out["wasted_keyword"] = _pairs(kw, "ad_group_criterion.keyword.text", pl.col("spend"))
    st = (t["search_term_daily"].filter(_window("segments.date", as_of, 30))
          .group_by("search_term_view.search_term").agg(agg)
          .filter((pl.col("clicks") >= p["wasted_term_min_clicks"])
                  & (pl.col("spend") >= p["wasted_term_min_spend_share"] * account_spend) & (pl.col("conv") == 0)))
    out["wasted_search_term"] = _pairs(st, "search_term_view.search_term", pl.col("spend"))
    lost = (camp.filter(_window("segments.date", as_of, 14)).group_by("campaign.id")
            .agg(pl.col("metrics.search_budget_lost_impression_share").mean().alias("lost")))
    c = camp.group_by("campaign.id").agg(agg).join(lost, on="campaign.id").with_columns(
        roas=pl.col("value") / pl.col("spend"), id=pl.col("campaign.id").cast(pl.String))
    target = p["target_roas"]
    below = c.filter((pl.col("roas") < p["below_target_roas_factor"] * target)
                     & (pl.col("spend") >= p["campaign_min_spend_share"] * account_spend))
    out["campaign_below_target_roas"] = _pairs(below, "id", pl.col("spend") - pl.col("value") / target)
    limited = c.filter((pl.col("lost") >= p["budget_lost_share_min"]) & (pl.col("roas") >= target))
    out["budget_limited_profitable_campaign"] = _pairs(
        limited, "id", pl.col("value") * pl.col("lost") / (1 - pl.col("lost")))
    return out


def _low_conversion(t, as_of: date, p: dict) -> dict[str, float]:
    it = (t["items_daily"].filter(_window("date", as_of, 30)).group_by("itemId")
          .agg(pl.col("itemsViewed").sum(), pl.col("itemsPurchased").sum(), pl.col("itemRevenue").sum())
          .filter(pl.col("itemsViewed") >= p["low_conversion_min_views"])
          .with_columns(rate=pl.col("itemsPurchased") / pl.col("itemsViewed")))
    median = it["rate"].median()
    weak = it.filter(pl.col("rate") < p["low_conversion_rate_factor"] * median)
    return _pairs(weak, "itemId", pl.col("itemsViewed") * (median - pl.col("rate"))
                  * pl.col("itemRevenue") / pl.col("itemsPurchased"))


def _revenue_drop(t, as_of: date) -> dict[str, float]:
    daily = dict(t["orders"].filter(~pl.col("test") & pl.col("cancelled_at").is_null())
                 .group_by(pl.col("processed_at").dt.date()).agg(pl.col("subtotal_price").sum()).iter_rows())
    observed = daily.get(as_of, 0.0)
    expected = sum(daily.get(as_of - timedelta(days=7 * k), 0.0) for k in range(1, 5)) / 4
    return {"shop": expected - observed} if observed < 0.5 * expected else {}
