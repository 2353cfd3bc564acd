with source as (
    {{ raw_source('google_ads', 'shopping_product_daily') }}
),

renamed as (
    select
        segments_date as date_day,
        campaign_id,
        segments_product_item_id as product_item_id,
        -- Shopify's Google channel feeds offers as shopify_<country>_<product_id>_<variant_id>
        -- (Google Ads reports it lower case); other offer ids give nulls.
        try_cast(nullif(regexp_extract(segments_product_item_id, '^shopify_[a-z]{2}_([0-9]+)_([0-9]+)$', 1, 'i'), '') as bigint) as product_id,
        try_cast(nullif(regexp_extract(segments_product_item_id, '^shopify_[a-z]{2}_([0-9]+)_([0-9]+)$', 2, 'i'), '') as bigint) as variant_id,
        {{ google_ads_metrics() }},
        _dlt_load_id
    from source
)

select * from renamed
