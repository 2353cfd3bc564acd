-- bestseller_low_stock: top sellers whose current stock lasts less than the reorder lead
-- time at their 28-day sales pace. Evaluated as of int_insights__as_of; reads the last 28
-- days of variant sales.
-- Bestsellers: among variants with 28-day revenue > 0, the top ceil(bestseller_top_share x
-- their count) by revenue (ties by variant_id). Days of cover: current stock (negative
-- counts as 0) / (28-day units / 28).
-- Impact: (lead_time_days - cover) x 28-day gross margin / 28 (monthly): the margin of the
-- days it will be out of stock before a reorder placed today arrives.
with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

variants as (
    select
        variant_id,
        {{ variant_entity_id() }} as entity_id,
        display_name,
        currency,
        unit_cost,
        is_tracked,
        total_available_quantity
    from {{ ref('dim_variants') }}
),

sales_28d as (
    select
        sales.variant_id,
        sum(sales.net_sales) as revenue_28d,
        sum(sales.units_sold) as units_28d
    from {{ ref('fct_daily_variant_sales') }} as sales
    cross join as_of
    where {{ in_last_days('sales.date_day', 'as_of.as_of_date', 28) }}
    group by sales.variant_id
),

ranked_sellers as (
    select
        *,
        row_number() over (order by revenue_28d desc, variant_id) as revenue_rank,
        count(*) over () as seller_count
    from sales_28d
    where revenue_28d > 0
),

bestsellers as (
    select *
    from ranked_sellers
    where revenue_rank <= ceil({{ var('bestseller_top_share') }} * seller_count)
),

covered as (
    select
        variants.*,
        bestsellers.revenue_28d,
        bestsellers.units_28d,
        bestsellers.revenue_rank,
        greatest(variants.total_available_quantity, 0)
            / (bestsellers.units_28d / 28.0) as days_of_cover,
        (bestsellers.revenue_28d - bestsellers.units_28d * variants.unit_cost) / 28.0 as daily_margin
    from bestsellers
    inner join variants
        on bestsellers.variant_id = variants.variant_id
    where variants.total_available_quantity is not null
      and variants.is_tracked is distinct from false
      and bestsellers.units_28d > 0
),

low_stock as (
    select
        *,
        {{ impact_amount('(' ~ var('lead_time_days') ~ ' - days_of_cover) * daily_margin') }} as impact_amount
    from covered
    where days_of_cover < {{ var('lead_time_days') }}
),

final as (
    select
        as_of.as_of_date,
        'bestseller_low_stock' as opportunity_type,
        'variant' as entity_type,
        entity_id,
        'Reorder ' || entity_id || ': bestseller with ' || {{ fmt_number('days_of_cover', 1) }}
            || ' days of stock left' as title,
        {{ variant_label() }}
            || ' is a bestseller (#' || revenue_rank || ', ' || {{ fmt_money('revenue_28d') }}
            || ' ' || coalesce(currency, '') || ' and ' || {{ fmt_number('units_28d') }}
            || ' units in the last 28 days) with ' || {{ fmt_number('total_available_quantity') }}
            || ' units left: ' || {{ fmt_number('days_of_cover', 1) }}
            || ' days of cover against a {{ var("lead_time_days") }}-day lead time.' as explanation,
        impact_amount,
        'monthly' as impact_kind,
        currency,
        'days_of_cover' as metric_name,
        days_of_cover::double as metric_value,
        'higher' as metric_better,
        0.85::double as base_confidence
    from low_stock
    cross join as_of
    where impact_amount > 0
)

select * from final
