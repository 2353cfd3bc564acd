-- The shop's daily figures the business alerts compare: one row per day from the first day
-- any source has data up to the as-of day A (int_insights__as_of) inclusive. A source's
-- figures are null before its own first day, and 0 on later days it has no row for (a day
-- without orders, an Ads account that spent nothing). Daily series: a few hundred rows a
-- year, so the whole history is cheap to rebuild on every run.
--   revenue          net_sales of fct_daily_sales (non-cancelled, non-test orders, by UTC
--                    order day, net of discounts, gross of refunds: it does not move when a
--                    refund arrives later)
--   orders           order_count of fct_daily_sales (non-cancelled)
--   sessions         GA4 sessions, all sources / media
--   conversion_rate  orders / sessions (null without sessions)
--   ad_*             Google Ads account totals over campaigns (fct_ads_campaign_daily)
with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

sales as (
    select date_day, order_count, net_sales
    from {{ ref('fct_daily_sales') }}
),

traffic as (
    select date_day, sum(sessions) as sessions
    from {{ ref('fct_ga4_traffic_daily') }}
    group by date_day
),

ads as (
    select
        date_day,
        sum(cost) as ad_spend,
        sum(clicks) as ad_clicks,
        sum(conversions) as ad_conversions,
        sum(conversions_value) as ad_conversion_value
    from {{ ref('fct_ads_campaign_daily') }}
    group by date_day
),

first_days as (
    select
        (select min(date_day) from sales) as shop_first_date,
        (select min(date_day) from traffic) as ga4_first_date,
        (select min(date_day) from ads) as ads_first_date
),

days as (
    select cast(day as date) as date_day
    from first_days
    cross join as_of
    cross join generate_series(
        cast(least(shop_first_date, ga4_first_date, ads_first_date) as timestamp),
        cast(as_of.as_of_date as timestamp),
        interval 1 day
    ) as series(day)
),

final as (
    select
        days.date_day,
        case when days.date_day >= first_days.shop_first_date
            then coalesce(sales.net_sales, 0) end::double as revenue,
        case when days.date_day >= first_days.shop_first_date
            then coalesce(sales.order_count, 0) end::bigint as orders,
        case when days.date_day >= first_days.ga4_first_date
            then coalesce(traffic.sessions, 0) end::bigint as sessions,
        (case when days.date_day >= first_days.shop_first_date then coalesce(sales.order_count, 0) end
            / nullif(case when days.date_day >= first_days.ga4_first_date
                then coalesce(traffic.sessions, 0) end, 0))::double as conversion_rate,
        case when days.date_day >= first_days.ads_first_date
            then coalesce(ads.ad_spend, 0) end::double as ad_spend,
        case when days.date_day >= first_days.ads_first_date
            then coalesce(ads.ad_clicks, 0) end::bigint as ad_clicks,
        case when days.date_day >= first_days.ads_first_date
            then coalesce(ads.ad_conversions, 0) end::double as ad_conversions,
        case when days.date_day >= first_days.ads_first_date
            then coalesce(ads.ad_conversion_value, 0) end::double as ad_conversion_value,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency
    from days
    cross join first_days
    left join sales on days.date_day = sales.date_day
    left join traffic on days.date_day = traffic.date_day
    left join ads on days.date_day = ads.date_day
)

select * from final
