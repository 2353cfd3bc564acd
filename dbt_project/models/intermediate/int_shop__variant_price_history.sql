-- Price history of each variant: intervals of its selling price with the price before, for
-- the insight rules that look at price changes (price_change_conversion_drop).
-- Shopify keeps no price history: it comes from the backfilled raw history
-- (stg_shop__variant_price_history) and the snapshot of the live variants
-- (snap_shop__variant_prices), which extends it from the first sync on.
--
-- End-of-day semantics: a row says the variant sold at `price` at the end of every UTC day
-- from valid_from_date to valid_to_date, both inclusive (valid_to_date null: still in force);
-- the price took effect on valid_from_date. Changes within one day collapse to the day's
-- last one (where the backfill and the snapshot hold a change at the same instant, the
-- snapshot wins), and consecutive days at the same price merge into one interval, so the
-- snapshot's versions for other variant changes (stock, title) disappear and a price that
-- both sources record counts once. previous_price is the price of the interval before (null
-- for a variant's first known price).
--
-- Whole history: price changes are rare, so it stays small; the snapshot versions are
-- reduced to price changes here.
with

price_changes as (
    select
        variant_id,
        price,
        valid_from,
        0 as source_priority
    from {{ ref('stg_shop__variant_price_history') }}
    union all
    select
        variant_id,
        price,
        dbt_valid_from as valid_from,
        1 as source_priority
    from {{ ref('snap_shop__variant_prices') }}
),

end_of_day_prices as (
    select
        variant_id,
        cast(timezone('UTC', valid_from) as date) as change_date,
        arg_max(price, {'valid_from': valid_from, 'source_priority': source_priority}) as price
    from price_changes
    where valid_from is not null
      and price is not null
    group by variant_id, cast(timezone('UTC', valid_from) as date)
),

-- Only days on which the price moved.
price_moves as (
    select *
    from end_of_day_prices
    qualify price is distinct from lag(price) over (partition by variant_id order by change_date)
),

final as (
    select
        variant_id,
        price,
        lag(price) over by_variant as previous_price,
        change_date as valid_from_date,
        lead(change_date) over by_variant - 1 as valid_to_date
    from price_moves
    window by_variant as (partition by variant_id order by change_date)
)

select * from final
