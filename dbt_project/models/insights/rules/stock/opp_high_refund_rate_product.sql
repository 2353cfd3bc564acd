-- high_refund_rate_product: variants refunded far more often than the shop's other products.
-- Over the orders of the last 90 days (non-cancelled, by order day, refunds so far):
-- refunded units >= refund_min_count and refunded units / units sold >= refund_rate_factor
-- x the shop's rate over the same orders (all variant lines). Evaluated as of
-- int_insights__as_of; reads the last 90 days of variant sales.
-- Impact: the refunds of those orders x 30 / 90 (monthly).
with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

variants as (
    select
        variant_id,
        {{ variant_entity_id() }} as entity_id,
        display_name,
        currency
    from {{ ref('dim_variants') }}
),

sales_90d as (
    select
        sales.variant_id,
        sum(sales.units_sold) as units_sold_90d,
        sum(sales.units_refunded) as units_refunded_90d,
        sum(sales.refunds) as refunds_90d
    from {{ ref('fct_daily_variant_sales') }} as sales
    cross join as_of
    where {{ in_last_days('sales.date_day', 'as_of.as_of_date', 90) }}
    group by sales.variant_id
),

shop_rate as (
    select sum(units_refunded_90d) / nullif(sum(units_sold_90d), 0) as shop_refund_rate_90d
    from sales_90d
),

high_refunds as (
    select
        variants.*,
        sales_90d.units_sold_90d,
        sales_90d.units_refunded_90d,
        sales_90d.refunds_90d,
        sales_90d.units_refunded_90d / sales_90d.units_sold_90d as refund_rate_90d,
        shop_rate.shop_refund_rate_90d,
        {{ impact_amount('sales_90d.refunds_90d * 30 / 90') }} as impact_amount
    from sales_90d
    cross join shop_rate
    inner join variants
        on sales_90d.variant_id = variants.variant_id
    where sales_90d.units_sold_90d > 0
      and sales_90d.units_refunded_90d >= {{ var('refund_min_count') }}
      and sales_90d.units_refunded_90d / sales_90d.units_sold_90d
          >= {{ var('refund_rate_factor') }} * shop_rate.shop_refund_rate_90d
),

final as (
    select
        as_of.as_of_date,
        'high_refund_rate_product' as opportunity_type,
        'variant' as entity_type,
        entity_id,
        'Check why ' || entity_id || ' gets refunded: '
            || {{ fmt_number('100 * refund_rate_90d') }} || '% of units' as title,
        {{ variant_label() }}
            || ': ' || units_refunded_90d || ' of ' || units_sold_90d
            || ' units sold in the last 90 days were refunded ('
            || {{ fmt_number('100 * refund_rate_90d', 1) }} || '% against '
            || {{ fmt_number('100 * shop_refund_rate_90d', 1) }} || '% for the shop), '
            || {{ fmt_money('refunds_90d') }} || ' ' || coalesce(currency, '')
            || ' in refunds.' as explanation,
        impact_amount,
        'monthly' as impact_kind,
        currency,
        'refund_rate_90d' as metric_name,
        refund_rate_90d::double as metric_value,
        'lower' as metric_better,
        0.7::double as base_confidence
    from high_refunds
    cross join as_of
    where impact_amount > 0
)

select * from final
