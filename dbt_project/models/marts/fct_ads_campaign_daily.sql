{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['date_day', 'campaign_id'],
        on_schema_change='fail',
        pre_hook="{{ record_test_window('_source_load_id') }}"
    )
}}

-- Google Ads campaign performance per day, with the usual ratios.
with

campaigns as (
    select * from {{ ref('stg_google_ads__campaign_daily') }}
    where {{ newer_loads() }}
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
        search_budget_lost_impression_share,
        campaigns._dlt_load_id as _source_load_id
    from campaigns
)

select * from final
