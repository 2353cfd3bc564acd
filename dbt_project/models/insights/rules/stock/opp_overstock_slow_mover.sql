-- overstock_slow_mover: variants tying up stock worth at least overstock_min_value at cost
-- that sold at most overstock_max_units_90d units in the last 90 days, and existed long
-- enough to judge (created at least 90 days before the as-of day). Evaluated as of
-- int_insights__as_of on current stock and cost; reads the last 90 days of variant sales.
-- Impact: the stock's value at cost (one_off), the cash to free by clearing it.
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
        total_available_quantity,
        created_at
    from {{ ref('dim_variants') }}
),

stocked_variants as (
    select
        variants.*,
        variants.total_available_quantity * variants.unit_cost as stock_value_at_cost
    from variants
    cross join as_of
    where variants.total_available_quantity > 0
      and variants.is_tracked is distinct from false
      and cast(timezone('UTC', variants.created_at) as date) <= as_of.as_of_date - 90
),

units_90d as (
    select
        sales.variant_id,
        sum(sales.units_sold) as units_sold_90d
    from {{ ref('fct_daily_variant_sales') }} as sales
    cross join as_of
    where {{ in_last_days('sales.date_day', 'as_of.as_of_date', 90) }}
    group by sales.variant_id
),

slow_movers as (
    select
        stocked_variants.*,
        coalesce(units_90d.units_sold_90d, 0) as units_sold_90d,
        {{ impact_amount('stocked_variants.stock_value_at_cost') }} as impact_amount
    from stocked_variants
    left join units_90d
        on stocked_variants.variant_id = units_90d.variant_id
    where stocked_variants.stock_value_at_cost >= {{ var('overstock_min_value') }}
      and coalesce(units_90d.units_sold_90d, 0) <= {{ var('overstock_max_units_90d') }}
),

final as (
    select
        as_of.as_of_date,
        'overstock_slow_mover' as opportunity_type,
        'variant' as entity_type,
        entity_id,
        'Clear slow-moving stock of ' || entity_id || ': '
            || {{ fmt_money('stock_value_at_cost') }} || ' ' || coalesce(currency, '')
            || ' at cost' as title,
        {{ variant_label() }}
            || ' holds ' || {{ fmt_number('total_available_quantity') }} || ' units worth '
            || {{ fmt_money('stock_value_at_cost') }} || ' ' || coalesce(currency, '')
            || ' at cost but sold only ' || units_sold_90d
            || case when units_sold_90d = 1 then ' unit' else ' units' end
            || ' in the last 90 days.' as explanation,
        impact_amount,
        'one_off' as impact_kind,
        currency,
        'stock_value_at_cost' as metric_name,
        stock_value_at_cost::double as metric_value,
        'lower' as metric_better,
        0.7::double as base_confidence
    from slow_movers
    cross join as_of
    where impact_amount > 0
)

select * from final
