-- ad_spend_spike_without_revenue: each day D of the backtest window, Google Ads spend
-- (account total) against the median of the same weekday of the alert_baseline_weeks weeks
-- before, and the shop's revenue against its own such median. Alerts when
--   spend >= (1 + alert_spend_spike_min_change) x its median, and
--   revenue change <= alert_spend_spike_revenue_ratio x spend change: revenue flat or down
--   next to the extra spend (at the +50 % threshold, revenue up at most 10 %; a trend or a
--   season that lifts both together does not alert), and
--   the baseline has enough volume: median Ads clicks >= alert_min_baseline_clicks (spend of
--   fewer clicks jumps by chance) and a revenue median above 0.
-- Both baselines need every one of their days. Severity: critical from twice the threshold
-- (spend doubled by default), else warning.
{%- set min_change = var('alert_spend_spike_min_change') %}
{%- set weeks = var('alert_baseline_weeks') | int %}

with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

baselines as (
    select
        *,
        list(ad_spend) over baseline as baseline_spend,
        list(ad_clicks::double) over baseline as baseline_clicks,
        list(revenue) over baseline as baseline_revenue
    from {{ ref('int_alerts__daily_metrics') }}
    window baseline as ({{ same_weekday_baseline() }})
),

in_window as (
    select
        baselines.*,
        {{ list_median('baseline_spend') }} as expected_spend,
        {{ list_median('baseline_clicks') }} as baseline_median_clicks,
        {{ list_median('baseline_revenue') }} as expected_revenue
    from baselines
    cross join as_of
    where {{ in_alert_window('baselines.date_day', 'as_of.as_of_date') }}
      and baselines.ad_spend is not null
      and baselines.revenue is not null
      and {{ list_count('baselines.baseline_spend') }} = {{ weeks }}
      and {{ list_count('baselines.baseline_revenue') }} = {{ weeks }}
),

changes as (
    select
        *,
        ad_spend / nullif(expected_spend, 0) - 1 as spend_change,
        revenue / nullif(expected_revenue, 0) - 1 as revenue_change
    from in_window
),

spikes as (
    select *
    from changes
    where spend_change >= {{ min_change }}
      and revenue_change <= {{ var('alert_spend_spike_revenue_ratio') }} * spend_change
      and baseline_median_clicks >= {{ var('alert_min_baseline_clicks') }}
),

final as (
    select
        'ad_spend_spike_without_revenue' as alert_type,
        case when spend_change >= 2 * {{ min_change }} then 'critical' else 'warning' end as severity,
        'shop' as entity_type,
        'shop' as entity_id,
        'ad_spend' as metric,
        ad_spend as observed,
        expected_spend as expected,
        date_day as for_date,
        cast(null as date) as episode_start,
        'Google Ads spent ' || {{ fmt_money('ad_spend') }} || ' ' || coalesce(currency, '') || ' on '
            || {{ fmt_day('date_day') }} || ', ' || {{ fmt_pct('spend_change') }} || ' above the median of '
            || {{ fmt_money('expected_spend') }} || ' ' || coalesce(currency, '') || ' on the previous {{ weeks }} ' || strftime(date_day, '%A')
            || 's, while revenue was ' || {{ fmt_money('revenue') }} || ' ' || coalesce(currency, '') || ' ('
            || {{ fmt_change('revenue_change') }} || ' against its median of ' || {{ fmt_money('expected_revenue') }} || ' ' || coalesce(currency, '')
            || ').' as message
    from spikes
)

select * from final
