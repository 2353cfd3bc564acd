"""The demo shop generator: schema, determinism, keys, consistency, realism and the
planted situations, re-detected independently from the generated tables."""

from __future__ import annotations

import hashlib
import math
from datetime import date, time, timedelta

import polars as pl
import pyarrow as pa
import pytest

from cleargro_pipeline.demo import DemoShop, PlantedSituation, delivered_schema, oracle
from cleargro_pipeline.demo.truth import opportunity_id
from cleargro_pipeline.sources.contract import APP_EVENTS, TABLES

AS_OF = date(2026, 11, 27)
NEW_KINDS = {"stockout_lost_sales", "overstock_slow_mover", "declining_product", "high_refund_rate_product",
             "negative_margin_ads_product", "price_change_conversion_drop"}


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return DemoShop("small", seed=7)


@pytest.fixture(scope="module")
def chunks(shop) -> dict[tuple[str, str], list[pa.Table]]:
    return {key: list(shop.iter_table(*key)) for key in shop.table_keys()}


@pytest.fixture(scope="module")
def t(chunks) -> dict[str, pl.DataFrame]:
    """Every table as one Polars frame, money as floats."""
    out = {}
    for (_, name), parts in chunks.items():
        df = pl.from_arrow(pa.concat_tables(parts))
        out[name] = df.with_columns(pl.col(pl.Decimal).cast(pl.Float64))
    return out


def _digest(tables) -> str:
    h = hashlib.sha256()
    for tbl in tables:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, tbl.schema) as writer:
            writer.write_table(tbl)
        h.update(sink.getvalue().to_pybytes())
    return h.hexdigest()


# --- schema and keys ---

def test_every_contract_table_is_offered(shop):
    assert sorted(shop.table_keys()) == sorted((t.dataset, t.name) for t in TABLES)


def test_chunks_conform_to_the_delivered_schema(chunks):
    for key, parts in chunks.items():
        expected = delivered_schema(*key)
        assert parts, key
        for part in parts:
            assert part.schema == expected, key


def test_delivered_schema_is_contract_plus_raw_identifiers():
    for raw in TABLES:
        got = delivered_schema(raw.dataset, raw.name)
        pseudo = {p for _, p in raw.pseudonymised}
        contract = [(f.name, f.type) for f in raw.schema if f.name not in pseudo]
        assert [(f.name, f.type) for f in got][: len(contract)] == contract
    assert delivered_schema("raw_shop", "orders").names[-4:] == ["customer_id", "email", "phone", "browser_ip"]
    assert delivered_schema("raw_shop", "customers").names[-5:] == ["id", "email", "first_name", "last_name", "phone"]
    assert "customer_pseudonym" not in delivered_schema("raw_shop", "customers").names


def test_monthly_tables_come_in_month_chunks(chunks):
    orders = chunks[("raw_shop", "orders")]
    assert len(orders) == 25  # 28 Nov 2024 .. 27 Nov 2026
    for part in orders:
        months = pl.from_arrow(part)["created_at"].dt.strftime("%Y-%m").unique()
        assert len(months) == 1


def test_primary_keys_unique_and_present(t):
    for raw in TABLES:
        df = t[raw.name]
        raw_name = {pseudonym: column for column, pseudonym in raw.pseudonymised}  # as delivered
        key = [raw_name.get(c, c) for c in raw.primary_key]
        assert df.height > 0, raw.name
        assert df.select(key).null_count().sum_horizontal().item() == 0, raw.name
        assert df.select(key).is_duplicated().sum() == 0, raw.name


# --- determinism ---

def test_same_seed_same_bytes_whatever_the_order(chunks):
    other = DemoShop("small", seed=7)
    for key in reversed(other.table_keys()):
        assert _digest(other.iter_table(*key)) == _digest(chunks[key]), key


def test_other_seed_other_data(chunks):
    other = DemoShop("small", seed=8)
    for key in [("raw_shop", "orders"), ("raw_shop", "products"), ("raw_google_ads", "keyword_daily")]:
        assert _digest(other.iter_table(*key)) != _digest(chunks[key]), key


def test_unknown_size_is_rejected():
    with pytest.raises(ValueError, match=r"'huge'.*small, medium, large"):
        DemoShop("huge")


# --- catalogue ---

def test_catalogue_is_plausible(t):
    v, items, p = t["product_variants"], t["inventory_items"], t["products"]
    assert 200 <= v.height <= 600
    assert p["title"].is_unique().all() and p["handle"].is_unique().all()
    per_product = v.group_by("product_id").len()["len"]
    assert per_product.min() >= 1 and per_product.max() <= 4
    assert v["sku"].is_unique().all()
    assert v["sku"].str.contains(r"^CG-\d+-\d+$").all()
    assert (v.filter(pl.col("compare_at_price").is_not_null())
            .select((pl.col("compare_at_price") > pl.col("price")).all()).item())
    assert 0.05 < v["compare_at_price"].is_not_null().mean() < 0.5
    joined = v.join(items, left_on="inventory_item_id", right_on="id", suffix="_item")
    assert joined.height == v.height and (joined["sku"] == joined["sku_item"]).all()
    ratio = joined["cost"] / joined["price"]
    assert ratio.min() >= 0.29 and ratio.max() <= 0.61
    assert 0.75 < (v["inventory_policy"] == "deny").mean() < 0.99
    assert set(v["inventory_policy"]) == {"deny", "continue"}
    assert set(v["inventory_management"]) == {"shopify"}
    assert 2 <= t["locations"].height <= 3
    levels = t["inventory_levels"]
    assert levels.height == v.height * t["locations"].height
    stock = levels.group_by("inventory_item_id").agg(pl.col("available").sum())
    check = v.join(stock, on="inventory_item_id")
    assert (check["inventory_quantity"] == check["available"]).all()


# --- orders ---

def test_order_totals_match_their_lines(t):
    o, li = t["orders"], t["order_line_items"]
    sums = li.group_by("order_id").agg(
        gross=(pl.col("price") * pl.col("quantity")).sum(), disc=pl.col("total_discount").sum(),
        updated=pl.col("order_updated_at").unique(), n=pl.len())
    j = o.join(sums, left_on="id", right_on="order_id")
    assert j.height == o.height  # every order has lines
    close = lambda a, b: ((j[a] - j[b]).abs() < 0.005).all()  # noqa: E731
    assert close("total_line_items_price", "gross")
    assert close("total_discounts", "disc")
    assert ((j["subtotal_price"] - (j["total_line_items_price"] - j["total_discounts"])).abs() < 0.005).all()
    assert ((j["total_price"] - (j["subtotal_price"] + j["total_shipping_price"] + j["total_tax"])).abs()
            < 0.005).all()
    assert (j["updated"].list.len() == 1).all()
    assert (j["updated"].list.first() == j["updated_at"]).all()
    assert (j["updated_at"] >= j["created_at"]).all()
    assert (j.filter(pl.col("discount_codes").is_null())["total_discounts"] == 0).all()
    assert (j.filter(pl.col("discount_codes").is_not_null())["total_discounts"] > 0).all()
    assert j["created_at"].dt.date().max() == AS_OF
    assert j["created_at"].dt.date().min() == AS_OF - timedelta(days=729)
    assert j["updated_at"].dt.date().max() <= AS_OF


def test_refunds_match_orders(t):
    o, li, r = t["orders"], t["order_line_items"], t["order_refund_line_items"]
    j = r.join(li, left_on="line_item_id", right_on="id", suffix="_line")
    assert j.height == r.height
    assert (j["order_id"] == j["order_id_line"]).all()
    assert (j["quantity"] <= j["quantity_line"]).all()
    assert (j["subtotal"] <= j["price"] * j["quantity"] + 0.005).all()
    assert (j["order_updated_at"] == j["order_updated_at_line"]).all()
    refunded = o.filter(pl.col("financial_status").is_in(["refunded", "partially_refunded"]))["id"]
    assert set(refunded) == set(r["order_id"])


def test_order_mix_is_plausible(t):
    o = t["orders"]
    assert 18_000 <= o.height <= 22_000
    assert 0.001 < o["test"].mean() < 0.01
    assert 0.01 < o["cancelled_at"].is_not_null().mean() < 0.04
    assert (o.filter(pl.col("cancelled_at").is_not_null())["cancel_reason"].is_not_null()).all()
    refunded = o["financial_status"].is_in(["refunded", "partially_refunded"]).mean()
    assert 0.03 < refunded < 0.10
    assert {"refunded", "partially_refunded", "paid", "voided"} <= set(o["financial_status"])
    assert 0.05 < o["discount_codes"].is_not_null().mean() < 0.3


def test_trend_seasonality_weekdays(t):
    o = (t["orders"].filter(~pl.col("test") & pl.col("cancelled_at").is_null())
         .with_columns(day=pl.col("created_at").dt.date()))
    month = o.group_by(pl.col("created_at").dt.strftime("%Y-%m").alias("m")).agg(pl.col("subtotal_price").sum())
    rev = dict(month.iter_rows())
    assert rev["2025-12"] > 1.3 * rev["2025-06"]
    assert rev["2026-06"] > 1.2 * rev["2025-06"]  # upward trend
    assert rev["2026-10"] > rev["2025-10"]
    daily = o.group_by("day").len().with_columns(wd=pl.col("day").dt.weekday())
    by_wd = dict(daily.group_by("wd").agg(pl.col("len").mean()).iter_rows())
    assert by_wd[7] > 1.15 * by_wd[6]  # Sunday beats Saturday


def test_bestsellers_dominate(t):
    units = t["order_line_items"].group_by("variant_id").agg(pl.col("quantity").sum()).sort("quantity")
    top = units["quantity"].tail(max(1, units.height // 20)).sum()
    assert top > 0.2 * units["quantity"].sum()  # top 5% of variants sell over a fifth of units


def test_shoppers_are_realistic_and_unique(t):
    c, o = t["customers"], t["orders"]
    assert c["email"].is_unique().all()
    assert c["email"].str.contains(r"^[a-z]+\.[a-z]+\.\d+@example\.com$").all()
    name = pl.concat_str(pl.col("first_name").str.to_lowercase(), pl.lit("."),
                         pl.col("last_name").str.to_lowercase(), pl.lit("."))
    assert c.select(pl.col("email").str.starts_with(name).all()).item()
    j = o.join(c, left_on="customer_id", right_on="id", suffix="_c")
    assert j.height == o.height  # every order's customer exists
    assert (j["email"] == j["email_c"]).all()
    assert (j["created_at"] >= j["created_at_c"]).all()
    counts = o.filter(~pl.col("test")).group_by("customer_id").len()
    check = c.join(counts, left_on="id", right_on="customer_id", how="left").fill_null(0)
    assert (check["orders_count"] == check["len"]).all()
    assert 0.55 < c.height / o.height < 0.7  # returning customers
    assert o["browser_ip"].drop_nulls().str.contains(r"^\d+\.\d+\.\d+\.\d+$").all()


# --- marketing consistency ---

def test_ga4_follows_orders(t):
    o = t["orders"].filter(~pl.col("test"))
    tr = t["traffic_daily"]
    ratio = tr["ecommercePurchases"].sum() / o.height
    assert 0.90 < ratio < 0.98
    assert 0.9 < tr["purchaseRevenue"].sum() / o["total_price"].sum() < 0.98
    assert (tr["sessions"] >= tr["ecommercePurchases"]).all()
    assert (tr["engagedSessions"] <= tr["sessions"]).all()
    assert {"google / cpc", "google / organic", "(direct) / (none)", "newsletter / email"} <= set(tr["sessionSourceMedium"])
    items = t["items_daily"]
    units = t["order_line_items"].join(o.select("id"), left_on="order_id", right_on="id")["quantity"].sum()
    assert 0.90 < items["itemsPurchased"].sum() / units < 0.98
    assert (items["itemsViewed"] >= items["itemsAddedToCart"]).all()
    assert (items["itemsAddedToCart"] >= items["itemsPurchased"]).all()
    products = t["products"].select(pl.col("id").alias("product_id"), pl.col("title").alias("product_title"))
    names = t["product_variants"].join(products, on="product_id").select("sku", "product_title")
    j = items.join(names, left_on="itemId", right_on="sku")
    assert j.height == items.height and (j["itemName"] == j["product_title"]).all()


def test_ads_children_sum_to_campaigns(t):
    camp = t["campaign_daily"]
    assert set(camp["campaign.advertising_channel_type"]) == {"SEARCH", "SHOPPING"}
    assert 4 <= camp["campaign.id"].n_unique() <= 10
    for child, channel in (("keyword_daily", "SEARCH"), ("shopping_product_daily", "SHOPPING")):
        sums = t[child].group_by("segments.date", "campaign.id").agg(
            pl.col("metrics.cost_micros").sum().alias("c"), pl.col("metrics.clicks").sum().alias("k"),
            pl.col("metrics.conversions_value").sum().alias("v"))
        j = camp.filter(pl.col("campaign.advertising_channel_type") == channel).join(
            sums, on=["segments.date", "campaign.id"], how="left").fill_null(0)
        assert ((j["metrics.cost_micros"] - j["c"]).abs() <= 1).all(), child
        assert (j["metrics.clicks"] == j["k"]).all(), child
        assert ((j["metrics.conversions_value"] - j["v"]).abs() < 1e-6 * (1 + j["v"])).all(), child
    assert camp["metrics.search_impression_share"].is_between(0, 1).all()
    assert camp["metrics.search_budget_lost_impression_share"].is_between(0, 1).all()
    assert set(t["keyword_daily"]["ad_group_criterion.keyword.match_type"]) == {"EXACT", "PHRASE", "BROAD"}
    items = t["shopping_product_daily"]["segments.product_item_id"]
    assert items.str.contains(r"^shopify_us_\d+_\d+$").all()
    # paid search value is a plausible share of shop revenue
    o = t["orders"].filter(~pl.col("test") & pl.col("cancelled_at").is_null())
    share = camp["metrics.conversions_value"].sum() / o["subtotal_price"].sum()
    assert 0.15 < share < 0.5


# --- opportunity rules, re-implemented from the rule table ---

def _last(df: pl.DataFrame, col: str, n: int, as_of: date = AS_OF) -> pl.DataFrame:
    return df.filter(pl.col(col) > as_of - timedelta(days=n))


def detect(t: dict[str, pl.DataFrame], as_of: date = AS_OF) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    counted = (t["orders"].filter(~pl.col("test") & pl.col("cancelled_at").is_null())
               .with_columns(day=pl.col("created_at").dt.date()))
    lines = t["order_line_items"].join(counted.select(pl.col("id").alias("order_id"), "day"), on="order_id")
    v28 = (_last(lines, "day", 28, as_of).group_by("sku")
           .agg(units=pl.col("quantity").sum(),
                revenue=(pl.col("price") * pl.col("quantity") - pl.col("total_discount")).sum()))
    stock = t["inventory_levels"].group_by("inventory_item_id").agg(pl.col("available").sum())
    variants = (t["product_variants"].select("id", "product_id", "sku", "inventory_item_id", "inventory_policy")
                .join(t["inventory_items"].select(pl.col("id").alias("inventory_item_id"), "cost"),
                      on="inventory_item_id")
                .join(stock, on="inventory_item_id"))

    # bestseller_low_stock
    sellers = v28.filter(pl.col("revenue") > 0).sort("revenue", descending=True)
    top = sellers.head(math.ceil(0.2 * sellers.height)).join(variants, on="sku").with_columns(
        cover=pl.col("available") / (pl.col("units") / 28),
        margin=(pl.col("revenue") - pl.col("units") * pl.col("cost")) / 28)
    low = top.filter(pl.col("cover") < 14)
    found["bestseller_low_stock"] = dict(zip(low["sku"], (14 - low["cover"]) * low["margin"]))

    # ads_on_out_of_stock
    spend = (_last(t["shopping_product_daily"], "segments.date", 7, as_of).group_by("segments.product_item_id")
             .agg(s7=pl.col("metrics.cost_micros").sum() / 1e6,
                  s3=pl.col("metrics.cost_micros").filter(pl.col("segments.date") > as_of - timedelta(days=3)).sum()))
    oos = (variants.filter((pl.col("available") <= 0) & (pl.col("inventory_policy") == "deny"))
           .with_columns(item=pl.format("shopify_us_{}_{}", "product_id", "id"))
           .join(spend, left_on="item", right_on="segments.product_item_id").filter(pl.col("s3") > 0))
    found["ads_on_out_of_stock"] = dict(zip(oos["sku"], oos["s7"] / 7 * 30))

    # ads rules over 30 days
    camp = _last(t["campaign_daily"], "segments.date", 30, as_of)
    account_spend = camp["metrics.cost_micros"].sum() / 1e6
    account_cr = camp["metrics.conversions"].sum() / camp["metrics.clicks"].sum()
    agg = [(pl.col("metrics.cost_micros").sum() / 1e6).alias("spend"), pl.col("metrics.clicks").sum().alias("clicks"),
           pl.col("metrics.conversions").sum().alias("conv"), pl.col("metrics.conversions_value").sum().alias("value")]
    kw = (_last(t["keyword_daily"], "segments.date", 30, as_of).group_by("ad_group_criterion.keyword.text").agg(agg)
          .filter((pl.col("clicks") >= max(10, 3 / account_cr)) & (pl.col("conv") == 0)))
    found["wasted_keyword"] = dict(zip(kw["ad_group_criterion.keyword.text"], kw["spend"]))
    st = (_last(t["search_term_daily"], "segments.date", 30, as_of).group_by("search_term_view.search_term").agg(agg)
          .filter((pl.col("clicks") >= 10) & (pl.col("spend") >= 0.02 * account_spend) & (pl.col("conv") == 0)))
    found["wasted_search_term"] = dict(zip(st["search_term_view.search_term"], st["spend"]))
    lost = (_last(camp, "segments.date", 14, as_of).group_by("campaign.id")
            .agg(pl.col("metrics.search_budget_lost_impression_share").mean().alias("lost")))
    c = camp.group_by("campaign.id").agg(agg).join(lost, on="campaign.id").with_columns(
        roas=pl.col("value") / pl.col("spend"), id=pl.col("campaign.id").cast(pl.String))
    below = c.filter((pl.col("roas") < 0.75 * 4.0) & (pl.col("spend") >= 0.01 * account_spend))
    found["campaign_below_target_roas"] = dict(zip(below["id"], below["spend"] - below["value"] / 4.0))
    limited = c.filter((pl.col("lost") >= 0.10) & (pl.col("roas") >= 4.0))
    found["budget_limited_profitable_campaign"] = dict(
        zip(limited["id"], limited["value"] * limited["lost"] / (1 - limited["lost"])))

    # high_traffic_low_conversion_product
    it = (_last(t["items_daily"], "date", 30, as_of).group_by("itemId")
          .agg(pl.col("itemsViewed").sum(), pl.col("itemsPurchased").sum(), pl.col("itemRevenue").sum())
          .filter(pl.col("itemsViewed") >= 200).with_columns(rate=pl.col("itemsPurchased") / pl.col("itemsViewed")))
    median = it["rate"].median()
    weak = it.filter(pl.col("rate") < median / 2)
    found["high_traffic_low_conversion_product"] = dict(zip(
        weak["itemId"], weak["itemsViewed"] * (median - weak["rate"]) * weak["itemRevenue"] / weak["itemsPurchased"]))

    # revenue_drop: the last day against the same weekday of the 4 weeks before
    daily = dict(counted.group_by("day").agg(pl.col("subtotal_price").sum()).iter_rows())
    observed = daily.get(as_of, 0.0)
    expected = sum(daily[as_of - timedelta(days=7 * k)] for k in range(1, 5)) / 4
    found["revenue_drop"] = {"shop": expected - observed} if observed < 0.5 * expected else {}
    return found


def test_planted_situations_are_detected_and_nothing_else(shop, t):
    truth = shop.ground_truth()
    assert all(isinstance(p, PlantedSituation) for p in truth)
    planted: dict[str, dict[str, float]] = {}
    for p in truth:
        planted.setdefault(p.kind, {})[p.entity_id] = p.expected_impact
    kinds = {"ads_on_out_of_stock", "bestseller_low_stock", "wasted_keyword", "wasted_search_term",
             "campaign_below_target_roas", "budget_limited_profitable_campaign",
             "high_traffic_low_conversion_product", "revenue_drop"}
    assert set(planted) == kinds | NEW_KINDS
    for kind, entities in planted.items():
        assert len(entities) >= (1 if kind == "revenue_drop" else 2), kind
    found = detect(t)  # the original eight; the oracle tests below cover all of them
    for kind in kinds:
        assert set(found[kind]) == set(planted[kind]), kind  # planted are found, nothing else is
        for entity, impact in planted[kind].items():
            assert impact > 0, (kind, entity)
            assert found[kind][entity] == pytest.approx(impact, rel=0.10), (kind, entity)


def test_ground_truth_details(shop):
    by_kind = {p.kind: p for p in shop.ground_truth()}
    drop = by_kind["revenue_drop"]
    assert drop.entity_id == "shop" and drop.detail["date"] == AS_OF.isoformat()
    assert drop.detail["observed"] < 0.5 * drop.detail["expected"]
    assert drop.expected_impact == pytest.approx(drop.detail["expected"] - drop.detail["observed"])
    assert by_kind["ads_on_out_of_stock"].detail["available"] == 0


def test_without_incidents_no_rule_fires():
    calm = DemoShop("small", seed=7, incidents=False)
    assert calm.ground_truth() == []
    frames = oracle.load(calm)
    found = detect(frames)
    assert {k: v for k, v in found.items() if v} == {}
    assert {k: v for k, v in oracle.evaluate(frames, AS_OF).items() if v} == {}
    assert frames["app_events"].height == 0  # nobody acts on opportunities that do not exist


# --- the reference oracle: all rules over all entities ---

def _planted(shop: DemoShop) -> dict[str, dict[str, float]]:
    planted: dict[str, dict[str, float]] = {}
    for p in shop.ground_truth():
        planted.setdefault(p.kind, {})[p.entity_id] = p.expected_impact
    return planted


@pytest.mark.parametrize("size", ["small", "medium"])
def test_oracle_raises_exactly_the_planted_situations(size, shop, t):
    """Every rule of dbt_project/models/insights/README.md over every entity: the planted
    situations fire with the ground truth's impact, and nothing else fires at all."""
    s = shop if size == "small" else DemoShop(size, seed=7)
    frames = t if size == "small" else oracle.load(s)
    planted = _planted(s)
    assert NEW_KINDS <= set(planted)
    found = oracle.evaluate(frames, s.as_of)
    assert set(found) == set(planted)  # 13 rules and the revenue-drop alert
    for kind, entities in planted.items():
        fixed = 1 if kind == "revenue_drop" else 2 if "campaign" in kind else s.spec.planted  # campaigns: 2 each
        assert len(entities) >= fixed, kind
        assert set(found[kind]) == set(entities), kind
        for entity, impact in entities.items():
            assert impact > 0, (kind, entity)
            assert found[kind][entity] == pytest.approx(impact, rel=1e-6, abs=0.01), (kind, entity)


@pytest.mark.parametrize("seed", [8, 9])
def test_other_seeds_are_clear_too(seed):
    s = DemoShop("small", seed=seed)
    found = oracle.evaluate(oracle.load(s), s.as_of)
    assert {k: set(v) for k, v in found.items()} == {k: set(v) for k, v in _planted(s).items()}


def test_new_situations_are_clear_cut(shop):
    d = {(p.kind, p.entity_id): p.detail for p in shop.ground_truth()}
    by_kind: dict[str, list[dict]] = {}
    for (kind, _), detail in d.items():
        by_kind.setdefault(kind, []).append(detail)
    for x in by_kind["stockout_lost_sales"]:
        assert x["zero_stock_days_30d"] >= 6
    for x in by_kind["overstock_slow_mover"]:
        assert x["units_90d"] == 0 and x["available"] * x["unit_cost"] >= 1_500
    for x in by_kind["declining_product"]:
        assert x["revenue_previous_28d"] >= 2_000
        assert x["revenue_last_28d"] <= 0.5 * x["revenue_previous_28d"]
    for x in by_kind["high_refund_rate_product"]:
        assert x["refunded_units_90d"] >= 10 and x["refund_rate"] >= 3 * x["shop_refund_rate"]
    for x in by_kind["negative_margin_ads_product"]:
        assert x["spend_30d"] >= 1.5 * x["conversions_value_30d"] * x["margin_rate"]
    for x in by_kind["price_change_conversion_drop"]:
        assert x["views_before"] >= 300 and x["views_after"] >= 300
        assert x["rate_after"] <= 0.6 * x["rate_before"]
        assert AS_OF - date.fromisoformat(x["rise_date"]) < timedelta(days=20)


# --- history and behaviour streams ---

def test_price_history_ends_at_todays_price_and_prices_the_orders(t):
    ph, v = t["variant_price_history"].sort("variant_id", "valid_from"), t["product_variants"]
    last = ph.group_by("variant_id").agg(pl.all().sort_by("valid_from").last())
    j = v.join(last, left_on="id", right_on="variant_id", suffix="_h")
    assert j.height == v.height
    assert (j["price"] == j["price_h"]).all()
    assert j["compare_at_price"].eq_missing(j["compare_at_price_h"]).all()
    first = ph.group_by("variant_id").agg(pl.col("valid_from").min())
    j = v.join(first, left_on="id", right_on="variant_id")
    assert (j["valid_from"] == j["created_at"]).all()  # the first row at the variant's creation
    assert 1.5 <= (ph.height - v.height) / v.height / 2 <= 6  # a few changes per variant-year
    assert (ph.group_by("variant_id").agg(pl.col("valid_from").n_unique() == pl.len())["valid_from"]).all()
    changed = ph.with_columns(prev=pl.col("price").shift(1).over("variant_id")).filter(pl.col("prev").is_not_null())
    assert (changed["price"] != changed["prev"]).mean() > 0.95  # a row per change
    assert changed.filter(pl.col("price") > pl.col("prev")).height > 0  # raises and sales ending
    assert (ph.filter(pl.col("compare_at_price").is_not_null())
            .select((pl.col("compare_at_price") > pl.col("price")).all()).item())
    # Every line sold at the price in force when the order was placed.
    lines = t["order_line_items"].join(t["orders"].select(pl.col("id").alias("order_id"), "created_at"),
                                       on="order_id").sort("created_at")
    asof = lines.join_asof(ph.select("variant_id", "valid_from", pl.col("price").alias("in_force")),
                           left_on="created_at", right_on="valid_from", by="variant_id", strategy="backward",
                           check_sortedness=False)
    assert (asof["price"] == asof["in_force"]).all()
    assert asof["price"].n_unique() > v["price"].n_unique()  # past prices do show


def _daily_stock(t) -> pl.DataFrame:
    """End-of-day stock per variant on every day of the two years, with the units ordered."""
    h = t["inventory_level_history"].with_columns(day=pl.col("valid_from").dt.date())
    days = pl.DataFrame({"day": pl.date_range(AS_OF - timedelta(days=729), AS_OF, eager=True)})
    grid = h.select("inventory_item_id", "location_id").unique().join(days, how="cross").sort("day")
    lvl = grid.join_asof(h.sort("day"), on="day", by=["inventory_item_id", "location_id"],
                         check_sortedness=False)
    stock = lvl.group_by("inventory_item_id", "day").agg(stock=pl.col("available").sum())
    v = t["product_variants"].select(pl.col("id").alias("variant_id"), "sku", "inventory_item_id", "inventory_policy")
    ordered = (t["order_line_items"].join(t["orders"].select(pl.col("id").alias("order_id"),
                                                           day=pl.col("created_at").dt.date()), on="order_id")
               .group_by("variant_id", "day").agg(units=pl.col("quantity").sum()))
    return (stock.join(v, on="inventory_item_id").join(ordered, on=["variant_id", "day"], how="left")
            .fill_null(0).sort("variant_id", "day")
            .with_columns(before=pl.col("stock").shift(1).over("variant_id")))


def test_stock_history_is_consistent(shop, t):
    h, levels = t["inventory_level_history"], t["inventory_levels"]
    assert (h["valid_from"].dt.time() == time(23, 59, 59)).all()  # end-of-day levels
    assert h.select(pl.col("inventory_item_id"), pl.col("location_id"), pl.col("valid_from").dt.date()) \
        .is_duplicated().sum() == 0
    assert h["available"].min() >= 0
    assert h["valid_from"].dt.date().min() == AS_OF - timedelta(days=729)
    last = h.group_by("inventory_item_id", "location_id").agg(pl.all().sort_by("valid_from").last())
    j = levels.join(last, on=["inventory_item_id", "location_id"], suffix="_h")
    assert j.height == levels.height and (j["available"] == j["available_h"]).all()
    assert (j["updated_at"] == j["valid_from"]).all()
    # A row only on change: consecutive rows of a series differ.
    prev = h.sort("valid_from").with_columns(p=pl.col("available").shift(1).over("inventory_item_id", "location_id"))
    assert (prev.filter(pl.col("p").is_not_null()).select(pl.col("available") != pl.col("p")).to_series()).all()

    d = _daily_stock(t).filter(pl.col("before").is_not_null())
    delivered = d["stock"] - d["before"] + d["units"]
    assert delivered.min() >= 0  # stock falls by the units ordered; only deliveries add
    assert 0 < (delivered > 0).mean() < 0.1
    planted = {p.entity_id for p in shop.ground_truth() if p.kind in ("stockout_lost_sales", "ads_on_out_of_stock")}
    planted |= {p.entity_id for p in shop.planted_incidents() if p.kind == "bestseller_stockout"}
    deny = d.filter(pl.col("inventory_policy") == "deny")
    # Nothing sells on a day that starts out of stock without a delivery.
    assert deny.filter((pl.col("before") <= 0) & (pl.col("units") > 0)
                       & (pl.col("stock") - pl.col("before") + pl.col("units") == 0)).height == 0
    empty = deny.filter(pl.col("stock") <= 0)
    assert set(empty["sku"]) == planted  # every other deny variant is always in stock


def test_app_events_follow_the_planted_opportunities(shop, t):
    ev = t["app_events"]
    assert set(ev["event"]) == set(APP_EVENTS)
    assert ev["user_id"].str.contains(r"^user-\d+$").all()
    assert (ev["ts"].dt.date() > AS_OF - timedelta(days=8 * 7)).all() and (ev["ts"].dt.date() <= AS_OF).all()
    opened = ev.filter(pl.col("event") == "report_opened")
    assert (opened["opportunity_id"] == "").all() and opened["ts"].dt.date().n_unique() >= 8  # weekly
    ids = {opportunity_id("demo", p.kind, p.entity_id) for p in shop.ground_truth() if p.kind != "revenue_drop"}
    acted = ev.filter(pl.col("event") != "report_opened")
    assert set(acted["opportunity_id"]) <= ids and acted["opportunity_id"].n_unique() >= 5
    dismissed = ev.filter(pl.col("event") == "opportunity_dismissed")
    actioned = ev.filter(pl.col("event") == "opportunity_actioned")
    assert dismissed.height == 1 and actioned.height == 1
    assert (AS_OF - dismissed["ts"].dt.date()[0]).days > 30  # snooze over: raised again
    for row in (dismissed, actioned):  # viewed first
        seen = acted.filter((pl.col("event") == "opportunity_viewed")
                            & (pl.col("opportunity_id") == row["opportunity_id"][0]) & (pl.col("ts") < row["ts"][0]))
        assert seen.height >= 1
    other = DemoShop("small", seed=7, tenant="acme")
    theirs = pl.from_arrow(pa.concat_tables(list(other.iter_table("raw_app", "app_events"))))
    assert set(theirs["opportunity_id"]) - {""} == {
        opportunity_id("acme", k, e) for k, e in ((p.kind, p.entity_id) for p in shop.ground_truth())
        if opportunity_id("demo", k, e) in set(acted["opportunity_id"])}


def test_opportunity_id_is_the_md5_of_tenant_type_entity():
    assert opportunity_id("demo", "wasted_keyword", "oak salad servers") == hashlib.md5(
        b"demo|wasted_keyword|oak salad servers").hexdigest()


# --- planted business-alert incidents (demo/incidents.py) ---

ALERT_TYPES = {"revenue_drop", "orders_drop", "sessions_drop", "conversion_rate_drop",
               "ad_spend_spike_without_revenue", "roas_drop", "bestseller_stockout"}


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_one_clear_cut_incident_of_each_alert_type_on_its_own_day(seed, shop):
    s = shop if seed == 7 else DemoShop("small", seed=seed)
    incidents = s.planted_incidents()
    assert {p.kind for p in incidents} == ALERT_TYPES and len(incidents) == len(ALERT_TYPES)
    days = {p.kind: date.fromisoformat(p.detail["date"]) for p in incidents}
    assert len(set(days.values())) == len(days)  # distinct days
    assert all(AS_OF - timedelta(days=46) <= d <= AS_OF for d in days.values())
    by_kind = {p.kind: p.detail for p in incidents}
    for kind in ("revenue_drop", "orders_drop", "sessions_drop", "conversion_rate_drop"):  # rules: 30 %, 3.5
        assert by_kind[kind]["change"] <= -0.45 and by_kind[kind]["robust_score"] <= -4.5, (kind, by_kind[kind])
    spike = by_kind["ad_spend_spike_without_revenue"]  # rule: +50 %, revenue <= 0.2 x that
    assert spike["change"] >= 1.2 and spike["revenue_change"] <= 0.1 * spike["change"], spike
    assert by_kind["roas_drop"]["ratio"] <= 0.55  # rule: under 0.7
    out = by_kind["bestseller_stockout"]  # rule: top 20 % of sellers on the day it ran out
    assert out["revenue_rank"] <= 0.1 * out["sellers_28d"]
    before, day, after, restocked = out["stock_from_day_before"]
    assert before > 0 and day == after == 0 and restocked > 0  # two zero days, far from the 30-day window
    assert AS_OF - days["bestseller_stockout"] > timedelta(days=30)


def test_without_incidents_nothing_is_planted_for_alerts_either():
    calm = DemoShop("small", seed=7, incidents=False)
    assert calm.alert_incidents is None and calm.planted_incidents() == [] and calm.spike_day is None
