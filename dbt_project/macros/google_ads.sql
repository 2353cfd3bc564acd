{#- The metrics every Google Ads report row carries, renamed; money from micros. -#}
{% macro google_ads_metrics() -%}
        (metrics_cost_micros / 1e6)::decimal(18, 6) as cost,
        metrics_impressions as impressions,
        metrics_clicks as clicks,
        metrics_conversions as conversions,
        metrics_conversions_value as conversions_value
{%- endmacro %}

{#- Ratios derived from those metrics (null where the denominator is zero). -#}
{% macro ads_ratios() -%}
        clicks / nullif(impressions, 0) as click_through_rate,
        cost / nullif(clicks, 0) as cost_per_click,
        conversions_value / nullif(cost, 0) as return_on_ad_spend
{%- endmacro %}
