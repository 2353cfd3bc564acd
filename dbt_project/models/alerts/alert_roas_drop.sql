-- roas_drop: each day D of the backtest window, the Google Ads ROAS of the 7 days ending at D
-- (conversion value / spend, account totals) against the ROAS of the 28 days before them
-- (D-34 .. D-7). Alerts when
--   7-day ROAS < alert_roas_drop_factor x the previous 28-day ROAS, and
--   the previous 28 days hold at least alert_roas_min_conversions Ads conversions (a ROAS of
--   fewer moves by chance) and spend > 0 in both windows.
-- Every one of the 35 days must have Ads data. Severity: critical when the fall is twice the
-- threshold's (7-day ROAS at most 0.4 x by default), else warning. A drop stays in the 7-day
-- window for up to 7 days: consecutive days are one episode (alert_detections).
{%- set factor = var('alert_roas_drop_factor') %}

with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

windows as (
    select
        date_day,
        currency,
        sum(ad_spend) over last_7 as spend_7d,
        sum(ad_conversion_value) over last_7 as value_7d,
        count(ad_spend) over last_7 as days_7d,
        sum(ad_spend) over previous_28 as spend_previous,
        sum(ad_conversion_value) over previous_28 as value_previous,
        sum(ad_conversions) over previous_28 as conversions_previous,
        count(ad_spend) over previous_28 as days_previous
    from {{ ref('int_alerts__daily_metrics') }}
    window
        last_7 as (order by date_day range between interval 6 days preceding and current row),
        previous_28 as (order by date_day range between interval 34 days preceding and interval 7 days preceding)
),

ratios as (
    select
        windows.*,
        value_7d / nullif(spend_7d, 0) as roas_7d,
        value_previous / nullif(spend_previous, 0) as roas_previous
    from windows
    cross join as_of
    where {{ in_alert_window('windows.date_day', 'as_of.as_of_date') }}
      and days_7d = 7
      and days_previous = 28
      and spend_7d > 0
      and spend_previous > 0
      and conversions_previous >= {{ var('alert_roas_min_conversions') }}
),

drops as (
    select *, roas_7d / nullif(roas_previous, 0) as ratio
    from ratios
    where roas_7d < {{ factor }} * roas_previous
),

final as (
    select
        'roas_drop' as alert_type,
        case when ratio <= 1 - 2 * (1 - {{ factor }}) then 'critical' else 'warning' end as severity,
        'shop' as entity_type,
        'shop' as entity_id,
        'roas_7d' as metric,
        roas_7d as observed,
        roas_previous as expected,
        date_day as for_date,
        cast(null as date) as episode_start,
        'Google Ads ROAS over the 7 days to ' || strftime(date_day, '%Y-%m-%d') || ' was '
            || {{ fmt_number('roas_7d', 2) }} || ' (' || {{ fmt_money('value_7d') }} || ' of conversion value for '
            || {{ fmt_money('spend_7d') }} || ' ' || coalesce(currency, '') || ' spent), '
            || {{ fmt_pct('1 - ratio') }} || ' below ' || {{ fmt_number('roas_previous', 2) }}
            || ' over the 28 days before (alert below {{ (factor * 100) | round | int }}% of it).' as message
    from drops
)

select * from final
