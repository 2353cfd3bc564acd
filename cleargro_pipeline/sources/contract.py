"""The raw-table contract: what each source may store, and nothing more.

Every source (the embedded demo generator, the file-drop import, live APIs)
delivers Arrow tables; `minimise.py` keeps exactly the columns named here
(an allowlist, so a field the API adds later is dropped, not stored) and
replaces shopper ids with keyed pseudonyms. Column names are the APIs' own
(Shopify Admin fields, GA4 report fields, GAQL fields); dlt's snake_case
naming turns them into warehouse columns (`metrics.cost_micros` ->
`metrics_cost_micros`, `itemsViewed` -> `items_viewed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

MONEY = pa.decimal128(18, 2)
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class RawTable:
    dataset: str  # warehouse schema, e.g. raw_shop
    name: str  # table name inside the dataset
    schema: pa.Schema
    primary_key: tuple[str, ...]
    cursor: str  # incremental cursor column (API name)
    # Columns whose raw value identifies a shopper: stored only as an
    # HMAC-SHA256 pseudonym under the name given here.
    pseudonymised: tuple[tuple[str, str], ...] = ()

    @property
    def source(self) -> str:
        return self.dataset.removeprefix("raw_")


def _t(dataset, name, fields, primary_key, cursor, pseudonymised=()):
    return RawTable(dataset, name, pa.schema(fields), tuple(primary_key), cursor, tuple(pseudonymised))


SHOP = "raw_shop"
GA4 = "raw_ga4"
GOOGLE_ADS = "raw_google_ads"
APP = "raw_app"

# GA4's data-quality flags (ResponseMetaData): rows folded into "(other)", thresholding
# applied (small counts withheld), and sampling.
GA4_QUALITY = [("dataLossFromOtherRow", pa.bool_()), ("subjectToThresholding", pa.bool_()),
               ("sampled", pa.bool_())]

TABLES: tuple[RawTable, ...] = (
    # --- shop (Shopify Admin objects, flattened) ---
    _t(SHOP, "products", [
        ("id", pa.int64()), ("title", pa.string()), ("handle", pa.string()),
        ("product_type", pa.string()), ("vendor", pa.string()), ("status", pa.string()),
        ("created_at", TS), ("updated_at", TS), ("published_at", TS),
    ], ["id"], "updated_at"),
    _t(SHOP, "product_variants", [
        ("id", pa.int64()), ("product_id", pa.int64()), ("title", pa.string()),
        ("sku", pa.string()), ("price", MONEY), ("compare_at_price", MONEY),
        ("inventory_policy", pa.string()), ("inventory_management", pa.string()),
        ("inventory_item_id", pa.int64()), ("inventory_quantity", pa.int64()),
        ("created_at", TS), ("updated_at", TS),
    ], ["id"], "updated_at"),
    _t(SHOP, "inventory_items", [
        ("id", pa.int64()), ("sku", pa.string()), ("cost", MONEY), ("tracked", pa.bool_()),
        ("created_at", TS), ("updated_at", TS),
    ], ["id"], "updated_at"),
    _t(SHOP, "inventory_levels", [
        ("inventory_item_id", pa.int64()), ("location_id", pa.int64()),
        ("available", pa.int64()), ("updated_at", TS),
    ], ["inventory_item_id", "location_id"], "updated_at"),
    _t(SHOP, "locations", [
        ("id", pa.int64()), ("name", pa.string()), ("country_code", pa.string()),
        ("active", pa.bool_()), ("created_at", TS), ("updated_at", TS),
    ], ["id"], "updated_at"),
    _t(SHOP, "orders", [
        ("id", pa.int64()), ("name", pa.string()), ("order_number", pa.int64()),
        ("created_at", TS), ("processed_at", TS), ("updated_at", TS),
        ("cancelled_at", TS), ("cancel_reason", pa.string()), ("closed_at", TS),
        ("financial_status", pa.string()), ("fulfillment_status", pa.string()),
        ("currency", pa.string()), ("total_price", MONEY), ("subtotal_price", MONEY),
        ("total_discounts", MONEY), ("total_tax", MONEY), ("total_line_items_price", MONEY),
        ("total_shipping_price", MONEY), ("test", pa.bool_()), ("source_name", pa.string()),
        ("discount_codes", pa.string()), ("customer_pseudonym", pa.string()),
    ], ["id"], "updated_at", pseudonymised=[("customer_id", "customer_pseudonym")]),
    _t(SHOP, "order_line_items", [
        ("id", pa.int64()), ("order_id", pa.int64()), ("product_id", pa.int64()),
        ("variant_id", pa.int64()), ("sku", pa.string()), ("title", pa.string()),
        ("quantity", pa.int64()), ("price", MONEY), ("total_discount", MONEY),
        ("order_updated_at", TS),
    ], ["id"], "order_updated_at"),
    _t(SHOP, "order_refund_line_items", [
        ("id", pa.int64()), ("refund_id", pa.int64()), ("order_id", pa.int64()),
        ("line_item_id", pa.int64()), ("quantity", pa.int64()), ("subtotal", MONEY),
        ("created_at", TS), ("order_updated_at", TS),
    ], ["id"], "order_updated_at"),
    # Daily history the shop does not keep: a row per change ("from valid_from on, the
    # value was ..."). dbt snapshots extend it on every sync; onboarding backfills it
    # (the demo generator supplies two years; a merchant may export it from a stock app).
    _t(SHOP, "variant_price_history", [
        ("variant_id", pa.int64()), ("price", MONEY), ("compare_at_price", MONEY), ("valid_from", TS),
    ], ["variant_id", "valid_from"], "valid_from"),
    _t(SHOP, "inventory_level_history", [
        ("inventory_item_id", pa.int64()), ("location_id", pa.int64()), ("available", pa.int64()),
        ("valid_from", TS),
    ], ["inventory_item_id", "location_id", "valid_from"], "valid_from"),
    _t(SHOP, "customers", [
        ("customer_pseudonym", pa.string()), ("created_at", TS), ("updated_at", TS),
        ("orders_count", pa.int64()), ("total_spent", MONEY), ("state", pa.string()),
        ("currency", pa.string()),
    ], ["customer_pseudonym"], "updated_at", pseudonymised=[("id", "customer_pseudonym")]),
    # --- GA4 Data API reports (RunReportRequest dimension/metric names) ---
    # Each row also carries the data-quality flags of the answer it came in (GA sets them per
    # request; null where unknown, e.g. a CSV export).
    _t(GA4, "items_daily", [
        ("date", pa.date32()), ("itemId", pa.string()), ("itemName", pa.string()),
        ("itemsViewed", pa.int64()), ("itemsAddedToCart", pa.int64()),
        ("itemsPurchased", pa.int64()), ("itemRevenue", pa.float64()), *GA4_QUALITY,
    ], ["date", "itemId"], "date"),
    _t(GA4, "traffic_daily", [
        ("date", pa.date32()), ("sessionSourceMedium", pa.string()),
        ("sessions", pa.int64()), ("engagedSessions", pa.int64()),
        ("ecommercePurchases", pa.int64()), ("purchaseRevenue", pa.float64()), *GA4_QUALITY,
    ], ["date", "sessionSourceMedium"], "date"),
    # --- Google Ads (GAQL field names; money in micros) ---
    _t(GOOGLE_ADS, "campaign_daily", [
        ("segments.date", pa.date32()), ("campaign.id", pa.int64()), ("campaign.name", pa.string()),
        ("campaign.status", pa.string()), ("campaign.advertising_channel_type", pa.string()),
        ("campaign_budget.amount_micros", pa.int64()),
        ("metrics.cost_micros", pa.int64()), ("metrics.impressions", pa.int64()),
        ("metrics.clicks", pa.int64()), ("metrics.conversions", pa.float64()),
        ("metrics.conversions_value", pa.float64()),
        ("metrics.search_impression_share", pa.float64()),
        ("metrics.search_budget_lost_impression_share", pa.float64()),
    ], ["segments.date", "campaign.id"], "segments.date"),
    _t(GOOGLE_ADS, "shopping_product_daily", [
        ("segments.date", pa.date32()), ("campaign.id", pa.int64()),
        ("segments.product_item_id", pa.string()),
        ("metrics.cost_micros", pa.int64()), ("metrics.impressions", pa.int64()),
        ("metrics.clicks", pa.int64()), ("metrics.conversions", pa.float64()),
        ("metrics.conversions_value", pa.float64()),
    ], ["segments.date", "campaign.id", "segments.product_item_id"], "segments.date"),
    _t(GOOGLE_ADS, "keyword_daily", [
        ("segments.date", pa.date32()), ("campaign.id", pa.int64()), ("ad_group.id", pa.int64()),
        ("ad_group_criterion.criterion_id", pa.int64()),
        ("ad_group_criterion.keyword.text", pa.string()),
        ("ad_group_criterion.keyword.match_type", pa.string()),
        ("metrics.cost_micros", pa.int64()), ("metrics.impressions", pa.int64()),
        ("metrics.clicks", pa.int64()), ("metrics.conversions", pa.float64()),
        ("metrics.conversions_value", pa.float64()),
    ], ["segments.date", "ad_group.id", "ad_group_criterion.criterion_id"], "segments.date"),
    _t(GOOGLE_ADS, "search_term_daily", [
        ("segments.date", pa.date32()), ("campaign.id", pa.int64()), ("ad_group.id", pa.int64()),
        ("search_term_view.search_term", pa.string()),
        ("metrics.cost_micros", pa.int64()), ("metrics.impressions", pa.int64()),
        ("metrics.clicks", pa.int64()), ("metrics.conversions", pa.float64()),
        ("metrics.conversions_value", pa.float64()),
    ], ["segments.date", "ad_group.id", "search_term_view.search_term"], "segments.date"),

    # --- our own app: what merchants' users do with opportunities (the feedback loop) ---
    _t(APP, "app_events", [
        ("ts", TS), ("user_pseudonym", pa.string()), ("event", pa.string()),
        ("opportunity_id", pa.string()),
    ], ["ts", "user_pseudonym", "event", "opportunity_id"], "ts",
        pseudonymised=[("user_id", "user_pseudonym")]),
)

APP_EVENTS = ("opportunity_viewed", "opportunity_dismissed", "opportunity_actioned", "report_opened")
SOURCES = {"shop": SHOP, "ga4": GA4, "google_ads": GOOGLE_ADS, "app": APP}
BY_KEY = {(t.dataset, t.name): t for t in TABLES}


def tables_of(source: str) -> list[RawTable]:
    dataset = SOURCES[source]
    return [t for t in TABLES if t.dataset == dataset]


def table(dataset: str, name: str) -> RawTable:
    return BY_KEY[(dataset, name)]
