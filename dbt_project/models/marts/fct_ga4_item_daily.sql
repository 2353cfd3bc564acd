{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['date_day', 'item_id'],
        on_schema_change='fail',
        pre_hook="{{ record_test_window('_source_load_id') }}"
    )
}}

-- GA4 item funnel per day, matched to the Shopify variant where the item id allows it:
-- shopify_<CC>_<product_id>_<variant_id>, a bare variant id, or a SKU unique in the shop.
with

items as (
    select * from {{ ref('stg_ga4__items_daily') }}
    where {{ newer_loads() }}
),

variants as (
    select * from {{ ref('dim_variants') }}
),

unique_skus as (
    select sku, min(variant_id) as variant_id
    from variants
    where sku is not null
    group by sku
    having count(*) = 1
),

parsed as (
    select
        items.*,
        coalesce(
            try_cast(nullif(regexp_extract(items.item_id, '^shopify_[a-z]{2}_[0-9]+_([0-9]+)$', 1, 'i'), '') as bigint),
            try_cast(items.item_id as bigint)
        ) as candidate_variant_id
    from items
),

final as (
    select
        parsed.date_day,
        parsed.item_id,
        parsed.item_name,
        coalesce(by_id.variant_id, unique_skus.variant_id) as variant_id,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency,
        parsed.items_viewed,
        parsed.items_added_to_cart,
        parsed.items_purchased,
        parsed.item_revenue,
        parsed.items_added_to_cart / nullif(parsed.items_viewed, 0) as add_to_cart_rate,
        parsed.items_purchased / nullif(parsed.items_viewed, 0) as view_to_purchase_rate,
        parsed._dlt_load_id as _source_load_id
    from parsed
    left join variants as by_id
        on parsed.candidate_variant_id = by_id.variant_id
    -- A plain equi-join (the id match wins in the coalesce above): a condition on the
    -- left join's outcome here would force a nested-loop join over every GA4 row.
    left join unique_skus
        on parsed.item_id = unique_skus.sku
)

select * from final
