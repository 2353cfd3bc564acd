{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['date_day', 'campaign_id', 'product_item_id'],
        on_schema_change='fail',
        pre_hook="{{ record_test_window('_source_load_id') }}"
    )
}}

-- Google Ads Shopping / Performance Max product performance per day, matched to the
-- Shopify variant through the feed's offer id.
with

products as (
    select * from {{ ref('stg_google_ads__shopping_product_daily') }}
    where {{ newer_loads() }}
),

variants as (
    select * from {{ ref('dim_variants') }}
),

final as (
    select
        products.date_day,
        products.campaign_id,
        products.product_item_id,
        products.product_id,
        products.variant_id,
        variants.variant_id is not null as is_matched_variant,
        variants.display_name,
        variants.sku,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency,
        products.cost,
        products.impressions,
        products.clicks,
        products.conversions,
        products.conversions_value,
        products.clicks / nullif(products.impressions, 0) as click_through_rate,
        products.cost / nullif(products.clicks, 0) as cost_per_click,
        products.conversions_value / nullif(products.cost, 0) as return_on_ad_spend,
        products._dlt_load_id as _source_load_id
    from products
    left join variants
        on products.variant_id = variants.variant_id
)

select * from final
