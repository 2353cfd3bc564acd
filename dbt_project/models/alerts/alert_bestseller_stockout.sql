-- bestseller_stockout: a bestseller ran out of stock. A stock-out is a spell of consecutive
-- days ending with stock <= 0 (int_shop__variant_stock_history, summed over locations) right
-- after a day that ended in stock; its first day S is the day stock reached zero. A spell
-- whose day before is unknown (the history's first day, stock not yet known) is skipped:
-- its start is not known. The variant is a bestseller if, on S, it is among the top
-- ceil(bestseller_top_share x sellers) variants by revenue of the 28 days ending at S (sellers:
-- variants with revenue > 0 then; ties by variant_id), the definition of
-- bestseller_low_stock. Stock tracked (dim_variants.is_tracked not false).
-- One row per day of the spell in the backtest window, all with episode_start = S: one
-- stock-out is one alert however long it lasts. Severity: critical under policy deny (no
-- sale until restocked), warning under continue (it sells on backorder).
-- Cheap: spells are built from the few intervals, bestsellers ranked only on days a spell
-- starts, and only the bestsellers' spells are spread out into days.
with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

history as (
    select
        variant_id,
        valid_from_date,
        least(coalesce(valid_to_date, as_of.as_of_date), as_of.as_of_date) as valid_to_date,
        total_available_quantity,
        total_available_quantity <= 0 as is_out
    from {{ ref('int_shop__variant_stock_history') }}
    cross join as_of
    where valid_from_date <= as_of.as_of_date
),

-- Consecutive intervals on the same side of zero form one spell (intervals are contiguous).
numbered as (
    select
        *,
        lag(is_out) over by_variant as previous_is_out,
        sum(case when is_out then 0 else 1 end) over (
            partition by variant_id order by valid_from_date rows between unbounded preceding and current row
        ) as in_stock_intervals_so_far
    from history
    window by_variant as (partition by variant_id order by valid_from_date)
),

spells as (
    select
        variant_id,
        min(valid_from_date) as stockout_date,
        max(valid_to_date) as last_out_date,
        -- the spell follows an in-stock interval (not the first interval known)
        bool_or(previous_is_out is not null and not previous_is_out) as follows_stock
    from numbered
    where is_out
    group by variant_id, in_stock_intervals_so_far
),

known_spells as (
    select spells.*
    from spells
    cross join as_of
    where follows_stock
      and spells.last_out_date > as_of.as_of_date - {{ var('alert_backtest_days') | int }}
),

spell_days as (
    select distinct stockout_date as date_day from known_spells
),

sales_28d as (
    select
        spell_days.date_day,
        sales.variant_id,
        sum(sales.net_sales) as revenue_28d
    from spell_days
    inner join {{ ref('fct_daily_variant_sales') }} as sales
        on sales.date_day > spell_days.date_day - 28
       and sales.date_day <= spell_days.date_day
    group by spell_days.date_day, sales.variant_id
),

ranked as (
    select
        *,
        row_number() over (partition by date_day order by revenue_28d desc, variant_id) as revenue_rank,
        count(*) over (partition by date_day) as seller_count
    from sales_28d
    where revenue_28d > 0
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

bestseller_spells as (
    select
        known_spells.*,
        ranked.revenue_28d,
        ranked.revenue_rank,
        ranked.seller_count,
        variants.entity_id,
        variants.display_name,
        variants.currency,
        variants.inventory_policy
    from known_spells
    inner join ranked
        on known_spells.variant_id = ranked.variant_id
       and known_spells.stockout_date = ranked.date_day
    inner join variants
        on known_spells.variant_id = variants.variant_id
    where ranked.revenue_rank <= ceil({{ var('bestseller_top_share') }} * ranked.seller_count)
      and variants.is_tracked is distinct from false
),

days as (
    select
        bestseller_spells.*,
        cast(day as date) as for_date
    from bestseller_spells
    cross join as_of
    cross join generate_series(
        cast(greatest(bestseller_spells.stockout_date,
                      as_of.as_of_date - {{ (var('alert_backtest_days') | int) - 1 }}) as timestamp),
        cast(bestseller_spells.last_out_date as timestamp),
        interval 1 day
    ) as series(day)
),

with_stock as (
    select
        days.*,
        history.total_available_quantity as units
    from days
    inner join history
        on days.variant_id = history.variant_id
       and days.for_date between history.valid_from_date and history.valid_to_date
),

final as (
    select
        'bestseller_stockout' as alert_type,
        case when inventory_policy = 'deny' then 'critical' else 'warning' end as severity,
        'variant' as entity_type,
        entity_id,
        'available_quantity' as metric,
        units::double as observed,
        cast(null as double) as expected,
        for_date,
        stockout_date as episode_start,
        {{ variant_label() }} || ', bestseller #' || revenue_rank || ' of ' || seller_count
            || ' by revenue (' || {{ fmt_money('revenue_28d') }} || ' ' || coalesce(currency, '')
            || ' in the 28 days to ' || strftime(stockout_date, '%Y-%m-%d') || '), ran out of stock on '
            || strftime(stockout_date, '%Y-%m-%d') || ' and has ' || {{ fmt_number('units') }}
            || ' units at the end of ' || strftime(for_date, '%Y-%m-%d')
            || ' (policy ' || coalesce(inventory_policy, 'unknown') || ').' as message
    from with_stock
)

select * from final
