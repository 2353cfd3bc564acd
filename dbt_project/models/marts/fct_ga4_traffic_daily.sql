{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['date_day', 'session_source_medium'],
        on_schema_change='fail',
        pre_hook="{{ record_test_window('_source_load_id') }}"
    )
}}

-- GA4 sessions and purchases per day and source / medium.
with

traffic as (
    select * from {{ ref('stg_ga4__traffic_daily') }}
    where {{ newer_loads() }}
),

final as (
    select
        date_day,
        session_source_medium,
        session_source,
        session_medium,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency,
        sessions,
        engaged_sessions,
        ecommerce_purchases,
        purchase_revenue,
        engaged_sessions / nullif(sessions, 0) as engagement_rate,
        ecommerce_purchases / nullif(sessions, 0) as session_conversion_rate,
        traffic._dlt_load_id as _source_load_id
    from traffic
)

select * from final
