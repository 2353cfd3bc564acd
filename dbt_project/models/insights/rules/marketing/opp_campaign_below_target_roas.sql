-- Campaigns whose return on ad spend over the last 30 days is well under the shop's target
-- (below_target_roas_factor x target_roas) while spending a real share of the account's
-- budget. The impact is the spend the campaign's conversion value does not justify at the
-- target: spend - conversion value / target_roas.
with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

account_30d as (
    {{ ads_account_totals(30) }}
),

campaigns_30d as (
    select
        campaigns.campaign_id,
        arg_max(campaigns.campaign_name, campaigns.date_day) as campaign_name,
        min(campaigns.currency) as currency,
        sum(campaigns.cost) as spend,
        sum(campaigns.conversions_value) as conversions_value
    from {{ ref('fct_ads_campaign_daily') }} as campaigns
    cross join as_of
    where campaigns.date_day > as_of.as_of_date - 30
      and campaigns.date_day <= as_of.as_of_date
    group by campaigns.campaign_id
),

scored as (
    select
        campaigns_30d.*,
        coalesce(campaigns_30d.conversions_value, 0) / nullif(campaigns_30d.spend, 0) as roas,
        campaigns_30d.spend
            - coalesce(campaigns_30d.conversions_value, 0) / {{ var('target_roas') }} as excess_spend
    from campaigns_30d
    cross join account_30d
    where campaigns_30d.spend >= {{ var('campaign_min_spend_share') }} * account_30d.account_spend
      and campaigns_30d.spend > 0
),

below_target as (
    select
        *,
        coalesce(campaign_name, campaign_id::varchar) as campaign_label
    from scored
    where roas < {{ var('below_target_roas_factor') }} * {{ var('target_roas') }}
      and excess_spend::decimal(18, 2) > 0
),

final as (
    select
        as_of.as_of_date,
        'campaign_below_target_roas' as opportunity_type,
        'campaign' as entity_type,
        below_target.campaign_id::varchar as entity_id,
        'Cut or fix campaign ''' || below_target.campaign_label || ''': ROAS '
            || {{ fmt_number('below_target.roas', 2) }} || ' vs target '
            || {{ fmt_number(var('target_roas'), 2) }} as title,
        'Campaign ''' || below_target.campaign_label || ''' had a ROAS of '
            || {{ fmt_number('below_target.roas', 2) }} || ' in the last 30 days ('
            || {{ fmt_money('below_target.conversions_value') }} || ' ' || coalesce(below_target.currency, '')
            || ' conversion value on ' || {{ fmt_money('below_target.spend') }} || ' '
            || coalesce(below_target.currency, '') || ' spend), below '
            || {{ fmt_number(var('below_target_roas_factor'), 2) }} || ' x the target ROAS of '
            || {{ fmt_number(var('target_roas'), 2) }} || '.' as explanation,
        below_target.excess_spend::decimal(18, 2) as impact_amount,
        'monthly' as impact_kind,
        below_target.currency,
        'roas_30d' as metric_name,
        below_target.roas::double as metric_value,
        'higher' as metric_better,
        0.8::double as base_confidence
    from below_target
    cross join as_of
)

select * from final
