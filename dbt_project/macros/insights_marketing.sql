{#- Google Ads account totals over the last `days` days ending at the as-of day A
    (date_day > A - days and date_day <= A): fct_ads_campaign_daily summed over campaigns.
    One row: account_spend, account_clicks, account_conversions, account_conversions_value.
    `as_of` names a relation (usually the model's own CTE) with the column as_of_date. -#}
{% macro ads_account_totals(days=30, as_of='as_of') -%}
    select
        coalesce(sum(campaigns.cost), 0) as account_spend,
        coalesce(sum(campaigns.clicks), 0) as account_clicks,
        coalesce(sum(campaigns.conversions), 0) as account_conversions,
        coalesce(sum(campaigns.conversions_value), 0) as account_conversions_value
    from {{ ref('fct_ads_campaign_daily') }} as campaigns
    cross join {{ as_of }}
    where campaigns.date_day > {{ as_of }}.as_of_date - {{ days }}
      and campaigns.date_day <= {{ as_of }}.as_of_date
{%- endmacro %}
