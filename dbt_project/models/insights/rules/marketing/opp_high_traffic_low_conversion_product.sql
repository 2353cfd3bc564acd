-- Much-viewed items that rarely sell: over the last 30 days, at least low_conversion_min_views
-- GA4 item views and a view-to-purchase rate under low_conversion_rate_factor x the shop's
-- median rate (over the items with that many views). Something on the page (price, photos,
-- stock, description) loses buyers. The impact is the revenue of the purchases the item
-- would make at the median rate: views x (median - rate) x mean selling price, where the
-- price is the item's 30-day revenue / units purchased. An item without a purchase has no
-- mean price; it falls back to the current price of its matched variant (none: no row).
with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

items_30d as (
    select
        items.item_id,
        arg_max(items.item_name, items.date_day) as item_name,
        max(items.variant_id) as variant_id,
        min(items.currency) as currency,
        sum(items.items_viewed) as views,
        sum(items.items_purchased) as purchases,
        sum(items.item_revenue) as revenue
    from {{ ref('fct_ga4_item_daily') }} as items
    cross join as_of
    where items.date_day > as_of.as_of_date - 30
      and items.date_day <= as_of.as_of_date
    group by items.item_id
),

well_viewed_items as (
    select
        *,
        coalesce(purchases, 0) / views as view_to_purchase_rate
    from items_30d
    where views >= {{ var('low_conversion_min_views') }}
),

shop_median as (
    select median(view_to_purchase_rate) as median_rate
    from well_viewed_items
),

variants as (
    select variant_id, price from {{ ref('dim_variants') }}
),

scored as (
    select
        well_viewed_items.*,
        shop_median.median_rate,
        coalesce(well_viewed_items.revenue / nullif(well_viewed_items.purchases, 0), variants.price)
            as mean_price
    from well_viewed_items
    cross join shop_median
    left join variants
        on well_viewed_items.variant_id = variants.variant_id
    where well_viewed_items.view_to_purchase_rate
        < {{ var('low_conversion_rate_factor') }} * shop_median.median_rate
),

low_conversion as (
    select
        *,
        views * (median_rate - view_to_purchase_rate) * mean_price as lost_revenue,
        coalesce(item_name, item_id) as item_label
    from scored
    where (views * (median_rate - view_to_purchase_rate) * mean_price)::decimal(18, 2) > 0
),

final as (
    select
        as_of.as_of_date,
        'high_traffic_low_conversion_product' as opportunity_type,
        'item' as entity_type,
        low_conversion.item_id as entity_id,
        'Check the product page of ''' || low_conversion.item_label
            || ''': many views, few purchases' as title,
        'Item ''' || low_conversion.item_label || ''' (' || low_conversion.item_id || ') had '
            || {{ fmt_number('low_conversion.views') }} || ' views but '
            || {{ fmt_number('coalesce(low_conversion.purchases, 0)') }}
            || ' purchases in the last 30 days, a rate of '
            || {{ fmt_number('100 * low_conversion.view_to_purchase_rate', 2) }}
            || '% against a shop median of ' || {{ fmt_number('100 * low_conversion.median_rate', 2) }}
            || '% (threshold ' || {{ fmt_number(var('low_conversion_rate_factor'), 2) }} || ' x the median, '
            || {{ fmt_number(var('low_conversion_min_views')) }} || ' views).'
            || {{ ga4_quality_note('as_of.as_of_date - 29', 'as_of.as_of_date') }} as explanation,
        low_conversion.lost_revenue::decimal(18, 2) as impact_amount,
        'monthly' as impact_kind,
        low_conversion.currency,
        'view_to_purchase_rate_30d' as metric_name,
        low_conversion.view_to_purchase_rate::double as metric_value,
        'higher' as metric_better,
        0.6::double as base_confidence
    from low_conversion
    cross join as_of
)

select * from final
