-- Variants whose latest price rise (day D, within the last 30 days) was followed by a drop
-- in the GA4 view-to-purchase rate: the rate from D to A is at most
-- (1 - price_change_min_rate_drop) x the rate over the 30 days before D, with at least
-- price_change_min_views views on each side (GA4 items matched to the variant, summed).
-- The rise may cost more sales than it earns: the impact is the purchases lost at the new
-- price per 30 days, (rate before - rate after) x views per day since D x 30 x new price.
-- Reads the price history (small) and the GA4 items of the 59 days before A and A itself
-- (the earliest before-window starts at A - 29 - 30).
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

-- Rises known as of A; a variant's latest one, kept if it took effect in the last 30 days.
latest_price_rises as (
    select
        prices.variant_id,
        prices.valid_from_date as rise_date,
        prices.previous_price,
        prices.price as new_price
    from {{ ref('int_shop__variant_price_history') }} as prices
    cross join as_of
    where prices.price > prices.previous_price
      and prices.valid_from_date <= as_of.as_of_date
    qualify row_number() over (partition by prices.variant_id order by prices.valid_from_date desc) = 1
),

recent_price_rises as (
    select latest_price_rises.*
    from latest_price_rises
    cross join as_of
    where latest_price_rises.rise_date > as_of.as_of_date - 30
),

item_days as (
    select
        items.variant_id,
        items.date_day,
        items.items_viewed,
        items.items_purchased
    from {{ ref('fct_ga4_item_daily') }} as items
    cross join as_of
    where items.date_day > as_of.as_of_date - 60
      and items.date_day <= as_of.as_of_date
      and items.variant_id is not null
),

funnel_around_rise as (
    select
        recent_price_rises.variant_id,
        recent_price_rises.rise_date,
        recent_price_rises.previous_price,
        recent_price_rises.new_price,
        as_of.as_of_date - recent_price_rises.rise_date + 1 as days_after,
        coalesce(sum(item_days.items_viewed) filter (
            where item_days.date_day < recent_price_rises.rise_date), 0) as views_before,
        coalesce(sum(item_days.items_purchased) filter (
            where item_days.date_day < recent_price_rises.rise_date), 0) as purchases_before,
        coalesce(sum(item_days.items_viewed) filter (
            where item_days.date_day >= recent_price_rises.rise_date), 0) as views_after,
        coalesce(sum(item_days.items_purchased) filter (
            where item_days.date_day >= recent_price_rises.rise_date), 0) as purchases_after
    from recent_price_rises
    cross join as_of
    inner join item_days
        on recent_price_rises.variant_id = item_days.variant_id
       and item_days.date_day >= recent_price_rises.rise_date - 30
    group by all
),

scored as (
    select
        *,
        purchases_before / views_before as rate_before,
        purchases_after / views_after as rate_after
    from funnel_around_rise
    where views_before >= {{ var('price_change_min_views') }}
      and views_after >= {{ var('price_change_min_views') }}
),

conversion_drops as (
    select
        scored.*,
        variants.entity_id,
        variants.display_name,
        variants.currency,
        (scored.rate_before - scored.rate_after) * (scored.views_after / scored.days_after * 30)
            * scored.new_price::double as lost_revenue
    from scored
    inner join variants
        on scored.variant_id = variants.variant_id
    where scored.rate_after <= (1 - {{ var('price_change_min_rate_drop') }}) * scored.rate_before
      and ((scored.rate_before - scored.rate_after) * (scored.views_after / scored.days_after * 30)
           * scored.new_price::double)::decimal(18, 2) > 0
),

final as (
    select
        as_of.as_of_date,
        'price_change_conversion_drop' as opportunity_type,
        'variant' as entity_type,
        entity_id,
        'Review the price rise of ' || entity_id || ': conversion fell by '
            || {{ fmt_number('100 * (1 - rate_after / rate_before)') }} || '%' as title,
        {{ variant_label() }} || ' converted ' || {{ fmt_number('100 * rate_after', 2) }} || '%'
            || ' of ' || {{ fmt_number('views_after') }} || ' views since its price rose from '
            || {{ fmt_money('previous_price') }} || ' to ' || {{ fmt_money('new_price') }} || ' '
            || coalesce(currency, '') || ' on ' || strftime(rise_date, '%Y-%m-%d') || ', against '
            || {{ fmt_number('100 * rate_before', 2) }} || '%' || ' of ' || {{ fmt_number('views_before') }}
            || ' views in the 30 days before (threshold: a '
            || {{ fmt_number('100 * ' ~ var('price_change_min_rate_drop')) }} || '% drop, '
            || {{ fmt_number(var('price_change_min_views')) }} || ' views each side).'
            || {{ ga4_quality_note('rise_date - 30', 'as_of.as_of_date') }} as explanation,
        lost_revenue::decimal(18, 2) as impact_amount,
        'monthly' as impact_kind,
        currency,
        'view_to_purchase_rate_since_price_rise' as metric_name,
        rate_after::double as metric_value,
        'higher' as metric_better,
        0.6::double as base_confidence
    from conversion_drops
    cross join as_of
)

select * from final
