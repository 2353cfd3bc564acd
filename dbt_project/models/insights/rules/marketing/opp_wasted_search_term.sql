-- Search terms (the queries people typed) that took many clicks and a noticeable share of the
-- account's spend in the last 30 days without a single conversion: candidates for negative
-- keywords. A term is its text, summed over the ad groups it matched.
with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

account_30d as (
    {{ ads_account_totals(30) }}
),

search_terms_30d as (
    select
        search_terms.search_term,
        min(search_terms.currency) as currency,
        sum(search_terms.clicks) as clicks,
        sum(search_terms.cost) as spend,
        sum(search_terms.conversions) as conversions
    from {{ ref('fct_ads_search_term_daily') }} as search_terms
    cross join as_of
    where search_terms.date_day > as_of.as_of_date - 30
      and search_terms.date_day <= as_of.as_of_date
    group by search_terms.search_term
),

wasted as (
    select
        search_terms_30d.*,
        search_terms_30d.spend / nullif(account_30d.account_spend, 0) as share_of_account_spend
    from search_terms_30d
    cross join account_30d
    where search_terms_30d.clicks >= {{ var('wasted_term_min_clicks') }}
      and search_terms_30d.spend >= {{ var('wasted_term_min_spend_share') }} * account_30d.account_spend
      and coalesce(search_terms_30d.conversions, 0) = 0
      and search_terms_30d.spend::decimal(18, 2) > 0
),

final as (
    select
        as_of.as_of_date,
        'wasted_search_term' as opportunity_type,
        'search_term' as entity_type,
        wasted.search_term as entity_id,
        'Add ''' || wasted.search_term || ''' as a negative keyword: '
            || {{ fmt_number('wasted.clicks') }} || ' clicks, no conversion' as title,
        'Search term ''' || wasted.search_term || ''' took ' || {{ fmt_number('wasted.clicks') }}
            || ' clicks and ' || {{ fmt_money('wasted.spend') }} || ' ' || coalesce(wasted.currency, '')
            || ' (' || {{ fmt_number('100 * wasted.share_of_account_spend', 1) }}
            || '% of account spend) in the last 30 days without a conversion (thresholds '
            || {{ fmt_number(var('wasted_term_min_clicks')) }} || ' clicks, '
            || {{ fmt_number('100 * ' ~ var('wasted_term_min_spend_share'), 1) }} || '% of spend).' as explanation,
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
