with source as (
    {{ raw_source('google_ads', 'search_term_daily') }}
),

renamed as (
    select
        segments_date as date_day,
        campaign_id,
        ad_group_id,
        search_term_view_search_term as search_term,
        {{ google_ads_metrics() }},
        _dlt_load_id
    from source
)

select * from renamed
