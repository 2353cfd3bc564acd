-- Google Ads search term performance per day.
with

search_terms as (
    select * from {{ ref('stg_google_ads__search_term_daily') }}
),

final as (
    select
        date_day,
        campaign_id,
        ad_group_id,
        search_term,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency,
        cost,
        impressions,
        clicks,
        conversions,
        conversions_value,
        clicks / nullif(impressions, 0) as click_through_rate,
        cost / nullif(clicks, 0) as cost_per_click,
        conversions_value / nullif(cost, 0) as return_on_ad_spend
    from search_terms
)

select * from final
