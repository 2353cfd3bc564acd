-- declining_product: variants whose revenue of the last 28 days fell by at least
-- declining_min_drop against the 28 days before (which reached declining_min_previous),
-- although they were in stock every day of those 56 days (so the drop is demand, not a
-- stockout; days of unknown stock disqualify). Evaluated as of int_insights__as_of; reads the
-- last 56 days of variant sales and stock intervals.
-- Impact: (previous - last 28-day revenue) x 30 / 28 (monthly), the revenue lost per month.
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

revenue_windows as (
    select
        sales.variant_id,
        coalesce(sum(sales.net_sales) filter (where sales.date_day <= as_of.as_of_date - 28), 0)
            as previous_revenue_28d,
        coalesce(sum(sales.net_sales) filter (where sales.date_day > as_of.as_of_date - 28), 0)
            as revenue_28d
    from {{ ref('fct_daily_variant_sales') }} as sales
    cross join as_of
    where {{ in_last_days('sales.date_day', 'as_of.as_of_date', 56) }}
    group by sales.variant_id
),

declines as (
    select *
    from revenue_windows
    where previous_revenue_28d >= {{ var('declining_min_previous') }}
      and revenue_28d <= (1 - {{ var('declining_min_drop') }}) * previous_revenue_28d
),

in_stock_days as (
    select
        history.variant_id,
        sum({{ interval_days_in_window('as_of.as_of_date', 56) }}) as in_stock_days_56d
    from {{ ref('int_shop__variant_stock_history') }} as history
    cross join as_of
    where history.total_available_quantity > 0
      and history.valid_from_date <= as_of.as_of_date
      and (history.valid_to_date is null or history.valid_to_date > as_of.as_of_date - 56)
    group by history.variant_id
),

declining as (
    select
        variants.*,
        declines.previous_revenue_28d,
        declines.revenue_28d,
        1 - declines.revenue_28d / declines.previous_revenue_28d as revenue_drop,
        {{ impact_amount('(declines.previous_revenue_28d - declines.revenue_28d) * 30 / 28') }}
            as impact_amount
    from declines
    inner join in_stock_days
        on declines.variant_id = in_stock_days.variant_id
    inner join variants
        on declines.variant_id = variants.variant_id
    where in_stock_days.in_stock_days_56d = 56
),

final as (
    select
        as_of.as_of_date,
        'declining_product' as opportunity_type,
        'variant' as entity_type,
        entity_id,
        'Find out why sales of ' || entity_id || ' fell '
            || {{ fmt_number('100 * revenue_drop') }} || '%' as title,
        {{ variant_label() }}
            || ' sold ' || {{ fmt_money('revenue_28d') }} || ' ' || coalesce(currency, '')
            || ' in the last 28 days against ' || {{ fmt_money('previous_revenue_28d') }}
            || ' in the 28 days before (-' || {{ fmt_number('100 * revenue_drop') }}
            || '%), while in stock every day.' as explanation,
        impact_amount,
        'monthly' as impact_kind,
        currency,
        'revenue_28d' as metric_name,
        revenue_28d::double as metric_value,
        'higher' as metric_better,
        0.6::double as base_confidence
    from declining
    cross join as_of
    where impact_amount > 0
)

select * from final
