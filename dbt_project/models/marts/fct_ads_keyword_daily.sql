{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['date_day', 'ad_group_id', 'criterion_id'],
        on_schema_change='fail',
        pre_hook="{{ record_test_window('_source_load_id') }}"
    )
}}

-- Google Ads keyword performance per day.
with

keywords as (
    select * from {{ ref('stg_google_ads__keyword_daily') }}
    where {{ newer_loads() }}
),

final as (
    select
        date_day,
        campaign_id,
        ad_group_id,
        criterion_id,
        keyword_text,
        keyword_match_type,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency,
        cost,
        impressions,
        clicks,
        conversions,
        conversions_value,
        {{ ads_ratios() }},
        keywords._dlt_load_id as _source_load_id
    from keywords
)

select * from final
