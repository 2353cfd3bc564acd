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

{#- The sentence an opportunity built on GA4 item figures adds when GA flagged any day it read
    (thresholding, rows folded into "(other)", sampling: the counts may be understated), or ''.
    `first_day` and `last_day` are SQL date expressions of the days the rule read. -#}
{% macro ga4_quality_note(first_day, last_day) -%}
    coalesce((
        select ' Note: GA4 flagged its data on ' || count(*) || ' of these days ('
            || concat_ws(', ',
                   case when bool_or(quality.is_subject_to_thresholding) then 'thresholding' end,
                   case when bool_or(quality.has_data_loss_from_other_row)
                        then 'rows folded into "(other)"' end,
                   case when bool_or(quality.is_sampled) then 'sampling' end)
            || '), so its counts may be incomplete.'
        from {{ ref('fct_ga4_data_quality_daily') }} as quality
        where quality.report = 'items'
          and quality.is_flagged
          and quality.date_day between {{ first_day }} and {{ last_day }}
        having count(*) > 0
    ), '')
{%- endmacro %}
