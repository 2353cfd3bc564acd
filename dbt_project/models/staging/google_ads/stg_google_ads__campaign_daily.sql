with source as (
    {{ raw_source('google_ads', 'campaign_daily') }}
),

renamed as (
    select
        segments_date as date_day,
        campaign_id,
        campaign_name,
        campaign_status,
        campaign_advertising_channel_type as advertising_channel_type,
        (campaign_budget_amount_micros / 1e6)::decimal(18, 6) as daily_budget,
        {{ google_ads_metrics() }},
        metrics_search_impression_share as search_impression_share,
        metrics_search_budget_lost_impression_share as search_budget_lost_impression_share,
        _dlt_load_id
    from source
)

select * from renamed
