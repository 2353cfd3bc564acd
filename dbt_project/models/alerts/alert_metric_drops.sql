-- revenue_drop, orders_drop, sessions_drop, conversion_rate_drop: each day D of the backtest
-- window (alert_backtest_days ending at A) against the same weekday of the
-- alert_baseline_weeks weeks before it. Baseline: the median of those days (all of them must
-- have the figure); robust score 0.6745 x (value - median) / MAD. A drop alerts when
--   value <= (1 - alert_drop_min_change) x median, and
--   score <= -alert_drop_min_score (a baseline without spread, MAD 0, has no score: the
--   relative change decides alone), and
--   the baseline has enough volume: median orders >= alert_min_baseline_orders (revenue,
--   orders, conversion rate) and median sessions >= alert_min_baseline_sessions (sessions,
--   conversion rate).
-- Severity: critical from twice the threshold (60 % below by default), else warning; a
-- sessions drop (no sale lost by itself) is warning from twice the threshold, else info.
-- One row per alert type and day the condition holds; alert_detections makes episodes.
{%- set min_change = var('alert_drop_min_change') %}
{%- set min_score = var('alert_drop_min_score') %}
{%- set weeks = var('alert_baseline_weeks') | int %}

with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

daily as (
    select * from {{ ref('int_alerts__daily_metrics') }}
),

metrics as (
    {%- for alert_type, metric in [('revenue_drop', 'revenue'), ('orders_drop', 'orders'),
                                   ('sessions_drop', 'sessions'), ('conversion_rate_drop', 'conversion_rate')] %}
    select
        date_day,
        '{{ alert_type }}' as alert_type,
        '{{ metric }}' as metric,
        {{ metric }}::double as value,
        orders::double as orders,
        sessions::double as sessions,
        currency
    from daily
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

baselines as (
    select
        *,
        list(value) over baseline as baseline_values,
        list(orders) over baseline as baseline_orders,
        list(sessions) over baseline as baseline_sessions
    from metrics
    window baseline as ({{ same_weekday_baseline('metric') }})
),

in_window as (
    select baselines.*
    from baselines
    cross join as_of
    where {{ in_alert_window('baselines.date_day', 'as_of.as_of_date') }}
      and baselines.value is not null
      and {{ list_count('baselines.baseline_values') }} = {{ weeks }}
),

medians as (
    select
        *,
        {{ list_median('baseline_values') }} as expected,
        {{ list_median('baseline_orders') }} as baseline_median_orders,
        {{ list_median('baseline_sessions') }} as baseline_median_sessions
    from in_window
),

scored as (
    select
        *,
        value / nullif(expected, 0) - 1 as relative_change,
        {{ robust_score('value', 'expected', list_mad('baseline_values', 'expected')) }} as robust_score
    from medians
),

drops as (
    select *
    from scored
    where expected > 0
      and relative_change <= -{{ min_change }}
      and (robust_score <= -{{ min_score }} or robust_score is null)
      and (metric not in ('revenue', 'orders', 'conversion_rate')
           or baseline_median_orders >= {{ var('alert_min_baseline_orders') }})
      and (metric not in ('sessions', 'conversion_rate')
           or baseline_median_sessions >= {{ var('alert_min_baseline_sessions') }})
),

final as (
    select
        alert_type,
        case
            when metric = 'sessions' and relative_change <= -2 * {{ min_change }} then 'warning'
            when metric = 'sessions' then 'info'
            when relative_change <= -2 * {{ min_change }} then 'critical'
            else 'warning'
        end as severity,
        'shop' as entity_type,
        'shop' as entity_id,
        metric,
        value as observed,
        expected,
        date_day as for_date,
        cast(null as date) as episode_start,
        case metric
            when 'revenue' then 'Revenue on ' || {{ fmt_day('date_day') }} || ' was '
                || {{ fmt_money('value') }} || ' ' || coalesce(currency, '')
            when 'orders' then 'Orders on ' || {{ fmt_day('date_day') }} || ' were '
                || {{ fmt_number('value') }}
            when 'sessions' then 'GA4 sessions on ' || {{ fmt_day('date_day') }} || ' were '
                || {{ fmt_number('value') }}
            else 'The conversion rate (orders / sessions) on ' || {{ fmt_day('date_day') }} || ' was '
                || {{ fmt_pct('value', 2) }}
        end
            || ', ' || {{ fmt_pct('-relative_change') }} || ' below the median of '
            || case metric
                when 'revenue' then {{ fmt_money('expected') }} || ' ' || coalesce(currency, '')
                when 'conversion_rate' then {{ fmt_pct('expected', 2) }}
                else {{ fmt_count('expected') }}
            end
            || ' on the previous {{ weeks }} ' || strftime(date_day, '%A') || 's ('
            || coalesce('robust score ' || {{ fmt_number('robust_score', 1) }}, 'no spread in the baseline')
            || '; thresholds {{ (min_change * 100) | round | int }}% and {{ min_score }}).' as message
    from drops
)

select * from final
