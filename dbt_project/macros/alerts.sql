{#- Helpers of the business-alert models (models/alerts/, spec in models/alerts/README.md). -#}

{#- The days every alert rule evaluates: the alert_backtest_days days ending at the as-of day
    inclusive. The live system reads the as-of day; the eval counts episodes over them all. -#}
{% macro in_alert_window(date_column, as_of_date) -%}
    {{ in_last_days(date_column, as_of_date, var('alert_backtest_days') | int) }}
{%- endmacro %}

{#- A window over int_alerts__daily_metrics (one row per day) holding, for each day, the same
    weekday of the alert_baseline_weeks weeks before it (the day itself excluded). Use in a
    query partitioned by the metric if the rows are unpivoted. -#}
{% macro same_weekday_baseline(partition_by='') -%}
    partition by {% if partition_by %}{{ partition_by }}, {% endif %}dayofweek(date_day)
    order by date_day
    range between interval {{ 7 * (var('alert_baseline_weeks') | int) }} days preceding
          and interval 1 days preceding
{%- endmacro %}

{#- The median of a list of numbers, nulls left out (null for an empty list). -#}
{% macro list_median(values) -%}
    list_aggregate(list_filter({{ values }}, x -> x is not null), 'median')
{%- endmacro %}

{#- The median absolute deviation of a list around its median `center`, nulls left out. -#}
{% macro list_mad(values, center) -%}
    list_aggregate(list_transform(list_filter({{ values }}, x -> x is not null), x -> abs(x - {{ center }})), 'median')
{%- endmacro %}

{#- The number of non-null values in a list. -#}
{% macro list_count(values) -%}
    len(list_filter({{ values }}, x -> x is not null))
{%- endmacro %}

{#- The robust score of `value` against a baseline: 0.6745 x (value - median) / MAD (the
    modified z-score of Iglewicz and Hoaglin; 3.5 is their outlier cut). Null when the
    baseline has no spread (MAD 0): the rules then let the relative change decide alone. -#}
{% macro robust_score(value, median, mad) -%}
    (0.6745 * ({{ value }} - {{ median }}) / nullif({{ mad }}, 0))
{%- endmacro %}

{#- A signed percentage for messages, e.g. -57% or +245%. -#}
{% macro fmt_change(ratio) -%}
    format('{:+.0f}%', 100 * ({{ ratio }})::double)
{%- endmacro %}

{#- An unsigned percentage for messages: 57%. -#}
{% macro fmt_pct(ratio, decimals=0) -%}
    format('{:.{{ decimals }}f}%', 100 * ({{ ratio }})::double)
{%- endmacro %}

{#- How a day is named in messages: Friday 2026-11-27. -#}
{% macro fmt_day(date_column) -%}
    (strftime({{ date_column }}, '%A') || ' ' || strftime({{ date_column }}, '%Y-%m-%d'))
{%- endmacro %}

{#- A count that may be a median of counts (x.5): no decimals unless it has a fraction. -#}
{% macro fmt_count(expression) -%}
    case when ({{ expression }}) = floor({{ expression }})
        then {{ fmt_number(expression) }} else {{ fmt_number(expression, 1) }} end
{%- endmacro %}
