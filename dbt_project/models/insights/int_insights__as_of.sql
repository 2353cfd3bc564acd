-- The day every rule is evaluated as of: the latest complete day in the tenant's own data,
-- not the wall clock, so historical imports and fixtures work. It is the earliest of the
-- sources' last days with data (a lagging source holds everyone back rather than making a
-- half-synced day look like a drop), and at most the day before the newest load: a day that
-- was still running when it was extracted is incomplete.
with

last_days as (
    select max(order_date) as last_day from {{ ref('fct_orders') }}
    union all
    select max(date_day) from {{ ref('fct_ga4_traffic_daily') }}
    union all
    select max(date_day) from {{ ref('fct_ads_campaign_daily') }}
),

newest_load as (
    select max(_dlt_load_id) as load_id from {{ ref('stg_shop__orders') }}
    union all
    select max(_dlt_load_id) from {{ ref('stg_ga4__traffic_daily') }}
    union all
    select max(_dlt_load_id) from {{ ref('stg_google_ads__campaign_daily') }}
),

final as (
    select
        least(
            (select min(last_day) from last_days where last_day is not null),
            (select cast(timezone('UTC', to_timestamp(max(try_cast(load_id as double)))) as date) - 1
             from newest_load)
        ) as as_of_date
)

select * from final
