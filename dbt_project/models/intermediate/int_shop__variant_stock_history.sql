-- Stock history of each variant: intervals of its available quantity summed over locations,
-- for the insight rules that need stock on past days (stockout_lost_sales, declining_product).
-- Shopify keeps no such history: it comes from the backfilled raw history
-- (stg_shop__inventory_level_history) and the snapshot of the live levels
-- (snap_shop__inventory_levels), which extends it from the first sync on.
--
-- End-of-day semantics: a row says the variant held total_available_quantity units at the end
-- of every UTC day from valid_from_date to valid_to_date, both inclusive (valid_to_date null:
-- still in force). Changes within one day collapse to the day's last one; where the backfill
-- and the snapshot both hold a change at the same instant, the snapshot wins (the same day in
-- both sources is thus counted once). Stock is known from the day every location of the
-- variant has a known level: earlier days have no row (unknown, e.g. before the first sync
-- when there is no backfill), rather than a partial sum that would look like a stockout.
--
-- Cheap by construction: only the last stock_history_days() days up to the as-of day are
-- kept. Each item and location enters them with the level it carried in (its last change
-- before), changes are turned into per-variant deltas and summed up, so the cost grows with
-- the number of changes in the window, never with days x variants. A variant's first
-- interval is clipped to the window's first day (or the day its stock became known).
{%- set history_days = stock_history_days() %}

with

horizon as (
    select
        as_of_date - {{ history_days - 1 }} as start_date,
        timezone('UTC', (as_of_date - {{ history_days - 1 }})::timestamp) as start_time
    from {{ ref('int_insights__as_of') }}
),

variants as (
    select variant_id, inventory_item_id
    from {{ ref('stg_shop__product_variants') }}
),

level_changes as (
    select
        inventory_item_id,
        location_id,
        available_quantity,
        valid_from,
        0 as source_priority
    from {{ ref('stg_shop__inventory_level_history') }}
    union all
    select
        inventory_item_id,
        location_id,
        available_quantity,
        dbt_valid_from as valid_from,
        1 as source_priority
    from {{ ref('snap_shop__inventory_levels') }}
),

-- The level each item and location carried into the window: its last change before it.
-- (Filtered on the raw timestamp: the UTC day is computed for the few rows kept only.)
carried_in_levels as (
    select
        inventory_item_id,
        location_id,
        cast(timezone('UTC', max(valid_from)) as date) as change_date,
        arg_max(available_quantity, {'valid_from': valid_from, 'source_priority': source_priority})
            as available_quantity
    from level_changes
    where valid_from < (select start_time from horizon)
      and available_quantity is not null
    group by inventory_item_id, location_id
),

-- Level at the end of each day it changed in the window, per item and location.
window_levels as (
    select
        inventory_item_id,
        location_id,
        cast(timezone('UTC', valid_from) as date) as change_date,
        arg_max(available_quantity, {'valid_from': valid_from, 'source_priority': source_priority})
            as available_quantity
    from level_changes
    where valid_from >= (select start_time from horizon)
      and available_quantity is not null
    group by inventory_item_id, location_id, cast(timezone('UTC', valid_from) as date)
),

daily_levels as (
    select * from carried_in_levels
    union all
    select * from window_levels
),

level_deltas as (
    select
        inventory_item_id,
        change_date,
        available_quantity - coalesce(
            lag(available_quantity) over (
                partition by inventory_item_id, location_id order by change_date
            ),
            0
        ) as quantity_delta
    from daily_levels
),

variant_deltas as (
    select
        variants.variant_id,
        level_deltas.change_date,
        sum(level_deltas.quantity_delta) as quantity_delta
    from level_deltas
    inner join variants
        on level_deltas.inventory_item_id = variants.inventory_item_id
    group by variants.variant_id, level_deltas.change_date
),

location_first_days as (
    select inventory_item_id, location_id, min(change_date) as first_date
    from daily_levels
    group by inventory_item_id, location_id
),

-- The first day on which every location of the variant has a known level.
variant_known_from as (
    select
        variants.variant_id,
        max(location_first_days.first_date) as known_from_date
    from location_first_days
    inner join variants
        on location_first_days.inventory_item_id = variants.inventory_item_id
    group by variants.variant_id
),

variant_levels as (
    select
        variant_id,
        change_date,
        sum(quantity_delta) over (
            partition by variant_id order by change_date
            rows between unbounded preceding and current row
        ) as total_available_quantity
    from variant_deltas
),

-- Only days on which the total moved (a transfer between locations leaves it unchanged).
variant_changes as (
    select *
    from variant_levels
    qualify total_available_quantity is distinct from
        lag(total_available_quantity) over (partition by variant_id order by change_date)
),

intervals as (
    select
        variant_id,
        change_date as valid_from_date,
        lead(change_date) over (partition by variant_id order by change_date) - 1 as valid_to_date,
        total_available_quantity
    from variant_changes
),

final as (
    select
        intervals.variant_id,
        greatest(intervals.valid_from_date, horizon.start_date, variant_known_from.known_from_date)
            as valid_from_date,
        intervals.valid_to_date,
        intervals.total_available_quantity::bigint as total_available_quantity
    from intervals
    inner join variant_known_from
        on intervals.variant_id = variant_known_from.variant_id
    cross join horizon
    where intervals.valid_to_date is null
       or intervals.valid_to_date >= greatest(horizon.start_date, variant_known_from.known_from_date)
)

select * from final
