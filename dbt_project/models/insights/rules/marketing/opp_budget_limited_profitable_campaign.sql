-- Profitable campaigns (30-day ROAS at or above target_roas) that kept losing search
-- impressions to their budget over the last 14 days (mean search_budget_lost_impression_share
-- >= budget_lost_share_min). Raising the budget buys more of the same: the impact is the
-- conversion value of the lost share at the current rate, value x lost / (1 - lost).
with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

campaigns_30d as (
    select
        campaigns.campaign_id,
        arg_max(campaigns.campaign_name, campaigns.date_day) as campaign_name,
        min(campaigns.currency) as currency,
        sum(campaigns.cost) as spend,
        sum(campaigns.conversions_value) as conversions_value,
        -- days without a reported share (e.g. no search traffic) do not count in the mean
        avg(campaigns.search_budget_lost_impression_share)
            filter (where campaigns.date_day > as_of.as_of_date - 14) as lost_share_14d
    from {{ ref('fct_ads_campaign_daily') }} as campaigns
    cross join as_of
    where campaigns.date_day > as_of.as_of_date - 30
      and campaigns.date_day <= as_of.as_of_date
    group by campaigns.campaign_id
),

scored as (
    select
        *,
        conversions_value / nullif(spend, 0) as roas,
        conversions_value * lost_share_14d / (1 - lost_share_14d) as lost_conversions_value
    from campaigns_30d
    where spend > 0
      and lost_share_14d < 1
),

budget_limited as (
    select
        *,
        coalesce(campaign_name, campaign_id::varchar) as campaign_label
    from scored
    where lost_share_14d >= {{ var('budget_lost_share_min') }}
      and roas >= {{ var('target_roas') }}
      and lost_conversions_value::decimal(18, 2) > 0
),

final as (
    select
        as_of.as_of_date,
        'budget_limited_profitable_campaign' as opportunity_type,
        'campaign' as entity_type,
        budget_limited.campaign_id::varchar as entity_id,
        'Raise the budget of campaign ''' || budget_limited.campaign_label || ''': '
            || {{ fmt_number('100 * budget_limited.lost_share_14d') }} || '% of impressions lost to budget' as title,
        'Campaign ''' || budget_limited.campaign_label || ''' lost '
            || {{ fmt_number('100 * budget_limited.lost_share_14d', 1) }}
            || '% of its search impressions to budget over the last 14 days (threshold '
            || {{ fmt_number('100 * ' ~ var('budget_lost_share_min'), 1) }}
            || '%) while returning a ROAS of ' || {{ fmt_number('budget_limited.roas', 2) }}
            || ' in 30 days (target ' || {{ fmt_number(var('target_roas'), 2) }} || ', '
            || {{ fmt_money('budget_limited.conversions_value') }} || ' ' || coalesce(budget_limited.currency, '')
            || ' conversion value).' as explanation,
        budget_limited.lost_conversions_value::decimal(18, 2) as impact_amount,
        'monthly' as impact_kind,
        budget_limited.currency,
        'budget_lost_impression_share_14d' as metric_name,
        budget_limited.lost_share_14d::double as metric_value,
        'lower' as metric_better,
        0.7::double as base_confidence
    from budget_limited
    cross join as_of
)

select * from final
