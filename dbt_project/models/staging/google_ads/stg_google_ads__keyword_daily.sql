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
        {{ google_ads_metrics() }},
        _dlt_load_id
    from source
)

select * from renamed
