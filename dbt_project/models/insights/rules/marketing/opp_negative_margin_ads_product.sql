-- Variants whose product ads cost more over the last 30 days than the gross margin of the
-- sales they brought: spend > conversion value x gross margin rate, where the margin rate is
-- (price - unit_cost) / price at the current price and cost (variants without a known cost
-- or price are skipped). Ads rows are matched to the variant through the offer id and
-- summed over campaigns. The impact is the margin the ads destroy a month:
-- spend - conversion value x margin rate.
with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

product_ads_30d as (
    select
        product_ads.variant_id,
        min(product_ads.currency) as currency,
        sum(product_ads.cost) as spend,
        coalesce(sum(product_ads.conversions_value), 0) as conversions_value
    from {{ ref('fct_ads_product_daily') }} as product_ads
    cross join as_of
    where product_ads.date_day > as_of.as_of_date - 30
      and product_ads.date_day <= as_of.as_of_date
      and product_ads.variant_id is not null
    group by product_ads.variant_id
),

variants as (
    select
        variant_id,
        {{ variant_entity_id() }} as entity_id,
        display_name,
        price,
        unit_cost
    from {{ ref('dim_variants') }}
),

-- Variants whose margin rate is known: a cost and a positive price.
variant_margins as (
    select
        variant_id,
        entity_id,
        display_name,
        ((price - unit_cost) / price)::double as margin_rate
    from variants
    where unit_cost is not null
      and price > 0
),

scored as (
    select
        product_ads_30d.*,
        variant_margins.entity_id,
        variant_margins.display_name,
        variant_margins.margin_rate,
        product_ads_30d.conversions_value * variant_margins.margin_rate as ads_gross_margin,
        product_ads_30d.spend::double
            - product_ads_30d.conversions_value * variant_margins.margin_rate as margin_shortfall
    from product_ads_30d
    inner join variant_margins
        on product_ads_30d.variant_id = variant_margins.variant_id
),

negative_margin as (
    select *
    from scored
    where spend > ads_gross_margin
      and margin_shortfall::decimal(18, 2) > 0
),

final as (
    select
        as_of.as_of_date,
        'negative_margin_ads_product' as opportunity_type,
        'variant' as entity_type,
        entity_id,
        'Cut ad spend on ' || entity_id || ': ads cost more than the margin they bring' as title,
        'Ads for ' || {{ variant_label() }} || ' cost ' || {{ fmt_money('spend') }} || ' '
            || coalesce(currency, '') || ' in the last 30 days and brought '
            || {{ fmt_money('conversions_value') }} || ' ' || coalesce(currency, '')
            || ' of conversion value, only ' || {{ fmt_money('ads_gross_margin') }} || ' '
            || coalesce(currency, '') || ' of gross margin at a '
            || {{ fmt_number('100 * margin_rate', 1) }} || '% margin rate.' as explanation,
        margin_shortfall::decimal(18, 2) as impact_amount,
        'monthly' as impact_kind,
        currency,
        'ads_gross_margin_after_spend_30d' as metric_name,
        (ads_gross_margin - spend::double) as metric_value,
        'higher' as metric_better,
        0.8::double as base_confidence
    from negative_margin
    cross join as_of
)

select * from final
