{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['date_day', 'ad_group_id', 'search_term'],
        on_schema_change='fail',
        pre_hook="{{ record_test_window('_source_load_id') }}"
    )
}}

-- Google Ads search term performance per day.
with

search_terms as (
    select * from {{ ref('stg_google_ads__search_term_daily') }}
    where {{ newer_loads() }}
),

final as (
    select
        date_day,
        campaign_id,
        ad_group_id,
        search_term,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency,
        cost,
        impressions,
        clicks,
        conversions,
        conversions_value,
        {{ ads_ratios() }},
        search_terms._dlt_load_id as _source_load_id
    from search_terms
)

select * from final
