with source as (
    {{ raw_source('google_ads', 'keyword_daily') }}
),

renamed as (
    select
        segments_date as date_day,
        campaign_id,
        ad_group_id,
        ad_group_criterion_criterion_id as criterion_id,
        ad_group_criterion_keyword_text as keyword_text,
        ad_group_criterion_keyword_match_type as keyword_match_type,
        (metrics_cost_micros / 1e6)::decimal(18, 6) as cost,
        metrics_impressions as impressions,
        metrics_clicks as clicks,
        metrics_conversions as conversions,
        metrics_conversions_value as conversions_value,
        _dlt_load_id
    from source
)

select * from renamed
