with source as (
    {{ raw_source('google_ads', 'search_term_daily') }}
),

renamed as (
    select
        segments_date as date_day,
        campaign_id,
        ad_group_id,
        search_term_view_search_term as search_term,
        (metrics_cost_micros / 1e6)::decimal(18, 6) as cost,
        metrics_impressions as impressions,
        metrics_clicks as clicks,
        metrics_conversions as conversions,
        metrics_conversions_value as conversions_value,
        _dlt_load_id
    from source
)

select * from renamed
