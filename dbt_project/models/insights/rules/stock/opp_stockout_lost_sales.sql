-- stockout_lost_sales: variants that could not be sold (policy deny) on at least
-- stockout_min_days of the last 30 days because they were out of stock (stock <= 0 at the
-- end of the day, from int_shop__variant_stock_history). Days of unknown stock count as
-- neither out of stock nor in stock. Evaluated as of int_insights__as_of; reads the last 60
-- days of stock intervals and variant sales.
-- Impact: out-of-stock days of the last 30 x average revenue per in-stock day of the last 60
-- (monthly): the sales those days would have brought.
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
        inventory_policy,
        is_tracked
    from {{ ref('dim_variants') }}
),

stock_intervals as (
    select history.*
    from {{ ref('int_shop__variant_stock_history') }} as history
    cross join as_of
    where history.valid_from_date <= as_of.as_of_date
      and (history.valid_to_date is null or history.valid_to_date > as_of.as_of_date - 60)
),

stock_days as (
    select
        stock_intervals.variant_id,
        coalesce(sum({{ interval_days_in_window('as_of.as_of_date', 30) }})
            filter (where stock_intervals.total_available_quantity <= 0), 0) as out_of_stock_days_30d,
        coalesce(sum({{ interval_days_in_window('as_of.as_of_date', 60) }})
            filter (where stock_intervals.total_available_quantity > 0), 0) as in_stock_days_60d
    from stock_intervals
    cross join as_of
    group by stock_intervals.variant_id
),

stocked_out as (
    select
        variants.*,
        stock_days.out_of_stock_days_30d,
        stock_days.in_stock_days_60d
    from stock_days
    inner join variants
        on stock_days.variant_id = variants.variant_id
    where variants.inventory_policy = 'deny'
      and variants.is_tracked is distinct from false
      and stock_days.out_of_stock_days_30d >= {{ var('stockout_min_days') }}
      and stock_days.in_stock_days_60d > 0
),

-- Revenue of the stocked-out variants on their in-stock days of the last 60.
in_stock_sales as (
    select
        sales.variant_id,
        sum(sales.net_sales) as in_stock_revenue_60d
    from {{ ref('fct_daily_variant_sales') }} as sales
    cross join as_of
    inner join stock_intervals
        on sales.variant_id = stock_intervals.variant_id
       and sales.date_day >= stock_intervals.valid_from_date
       and (stock_intervals.valid_to_date is null or sales.date_day <= stock_intervals.valid_to_date)
    where {{ in_last_days('sales.date_day', 'as_of.as_of_date', 60) }}
      and stock_intervals.total_available_quantity > 0
      and sales.variant_id in (select variant_id from stocked_out)
    group by sales.variant_id
),

lost_sales as (
    select
        stocked_out.*,
        in_stock_sales.in_stock_revenue_60d,
        in_stock_sales.in_stock_revenue_60d / stocked_out.in_stock_days_60d as revenue_per_in_stock_day,
        {{ impact_amount('stocked_out.out_of_stock_days_30d * in_stock_sales.in_stock_revenue_60d / stocked_out.in_stock_days_60d') }}
            as impact_amount
    from stocked_out
    inner join in_stock_sales
        on stocked_out.variant_id = in_stock_sales.variant_id
),

final as (
    select
        as_of.as_of_date,
        'stockout_lost_sales' as opportunity_type,
        'variant' as entity_type,
        entity_id,
        'Restock ' || entity_id || ': out of stock ' || out_of_stock_days_30d
            || ' of the last 30 days' as title,
        {{ variant_label() }}
            || ' was out of stock on ' || out_of_stock_days_30d
            || ' of the last 30 days, while it sold ' || {{ fmt_money('revenue_per_in_stock_day') }}
            || ' ' || coalesce(currency, '') || ' a day on its ' || in_stock_days_60d
            || ' in-stock days of the last 60 (' || {{ fmt_money('in_stock_revenue_60d') }}
            || ' ' || coalesce(currency, '') || ').' as explanation,
        impact_amount,
        'monthly' as impact_kind,
        currency,
        'out_of_stock_days_30d' as metric_name,
        out_of_stock_days_30d::double as metric_value,
        'lower' as metric_better,
        0.75::double as base_confidence
    from lost_sales
    cross join as_of
    where impact_amount > 0
)

select * from final
