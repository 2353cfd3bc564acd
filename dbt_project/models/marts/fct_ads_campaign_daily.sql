-- Google Ads campaign performance per day, with the usual ratios.
with

campaigns as (
    select * from {{ ref('stg_google_ads__campaign_daily') }}
),

final as (
    select
        date_day,
        campaign_id,
        campaign_name,
        campaign_status,
        advertising_channel_type,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency,
        daily_budget,
        cost,
        impressions,
        clicks,
        conversions,
        conversions_value,
        {{ ads_ratios() }},
        search_impression_share,
        search_budget_lost_impression_share
    from campaigns
)

select * from final
