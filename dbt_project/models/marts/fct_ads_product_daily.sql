{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['date_day', 'campaign_id', 'product_item_id'],
        on_schema_change='fail',
        pre_hook="{{ record_test_window('_source_load_id') }}"
    )
}}

-- Google Ads Shopping / Performance Max product performance per day, matched to a Shopify
-- variant: first by the offer id Shopify's Google channel builds
-- (shopify_<country>_<product_id>_<variant_id>, parsed in staging, any case), then by SKU
-- (case-insensitive, SKUs that name one variant only). Unmatched rows keep their spend with
-- null ids: the insights use matched rows, and `cleargro tenants show` reports the share.
with

products as (
    select * from {{ ref('stg_google_ads__shopping_product_daily') }}
    where {{ newer_loads() }}
),

variants as (
    select * from {{ ref('dim_variants') }}
),

unique_skus as (
    select lower(sku) as sku_key, any_value(variant_id) as variant_id
    from variants
    where sku is not null and sku <> ''
    group by lower(sku)
    having count(*) = 1
),

-- Each distinct offer id matched once (a few thousand), not once per row and day.
offers as (
    select distinct product_item_id, variant_id as offer_variant_id
    from products
),

offer_matches as (
    select
        offers.product_item_id,
        coalesce(by_offer.variant_id, by_sku.variant_id) as matched_variant_id
    from offers
    left join variants as by_offer
        on offers.offer_variant_id = by_offer.variant_id
    left join unique_skus as by_sku
        on lower(offers.product_item_id) = by_sku.sku_key
),

matched as (
    select products.*, offer_matches.matched_variant_id
    from products
    left join offer_matches  -- an offer id determines its parsed variant id
        on products.product_item_id = offer_matches.product_item_id
),

final as (
    select
        matched.date_day,
        matched.campaign_id,
        matched.product_item_id,
        variants.product_id,
        variants.variant_id,
        variants.variant_id is not null as is_matched_variant,
        variants.display_name,
        variants.sku,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency,
        matched.cost,
        matched.impressions,
        matched.clicks,
        matched.conversions,
        matched.conversions_value,
        matched.clicks / nullif(matched.impressions, 0) as click_through_rate,
        matched.cost / nullif(matched.clicks, 0) as cost_per_click,
        matched.conversions_value / nullif(matched.cost, 0) as return_on_ad_spend,
        matched._dlt_load_id as _source_load_id
    from matched
    left join variants
        on matched.matched_variant_id = variants.variant_id
)

select * from final
