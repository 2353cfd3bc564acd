-- Keywords that took many clicks in the last 30 days without a single conversion: their
-- spend buys nothing. The clicks threshold is the number of clicks in which the account
-- would expect three conversions (3 / account conversion rate), never below
-- wasted_keyword_min_clicks; an account without any conversion flags no keyword (the
-- threshold is unbounded: nothing to compare against, and tracking is likely off).
-- A keyword is its text, summed over the ad groups that hold it.
with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

account_30d as (
    {{ ads_account_totals(30) }}
),

click_threshold as (
    select
        case
            when account_conversions > 0
                then greatest(
                    {{ var('wasted_keyword_min_clicks') }}::double,
                    3 * account_clicks / account_conversions
                )
        end as min_clicks
    from account_30d
),

keywords_30d as (
    select
        keywords.keyword_text,
        min(keywords.currency) as currency,
        sum(keywords.clicks) as clicks,
        sum(keywords.cost) as spend,
        sum(keywords.conversions) as conversions
    from {{ ref('fct_ads_keyword_daily') }} as keywords
    cross join as_of
    where keywords.date_day > as_of.as_of_date - 30
      and keywords.date_day <= as_of.as_of_date
      and keywords.keyword_text is not null
    group by keywords.keyword_text
),

wasted as (
    select
        keywords_30d.*,
        click_threshold.min_clicks
    from keywords_30d
    cross join click_threshold
    where keywords_30d.clicks >= click_threshold.min_clicks
      and coalesce(keywords_30d.conversions, 0) = 0
      and keywords_30d.spend::decimal(18, 2) > 0
),

final as (
    select
        as_of.as_of_date,
        'wasted_keyword' as opportunity_type,
        'keyword' as entity_type,
        wasted.keyword_text as entity_id,
        'Pause keyword ''' || wasted.keyword_text || ''': '
            || {{ fmt_number('wasted.clicks') }} || ' clicks, no conversion' as title,
        'Keyword ''' || wasted.keyword_text || ''' took ' || {{ fmt_number('wasted.clicks') }}
            || ' clicks and ' || {{ fmt_money('wasted.spend') }} || ' ' || coalesce(wasted.currency, '')
            || ' in the last 30 days without a conversion (threshold '
            || {{ fmt_number('ceil(wasted.min_clicks)') }} || ' clicks).' as explanation,
        wasted.spend::decimal(18, 2) as impact_amount,
        'monthly' as impact_kind,
        wasted.currency,
        'ad_spend_30d' as metric_name,
        wasted.spend::double as metric_value,
        'lower' as metric_better,
        0.8::double as base_confidence
    from wasted
    cross join as_of
)

select * from final
