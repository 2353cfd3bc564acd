-- Current available stock per inventory item (variant) and location, valued at unit cost.
with

levels as (
    select * from {{ ref('stg_shop__inventory_levels') }}
),

variants as (
    select * from {{ ref('stg_shop__product_variants') }}
),

items as (
    select * from {{ ref('stg_shop__inventory_items') }}
),

locations as (
    select * from {{ ref('stg_shop__locations') }}
),

final as (
    select
        levels.inventory_item_id,
        levels.location_id,
        variants.variant_id,
        variants.product_id,
        coalesce(variants.sku, items.sku) as sku,
        locations.location_name,
        locations.country_code,
        locations.is_active as is_location_active,
        variants.inventory_policy,
        levels.available_quantity,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency,
        items.unit_cost,
        (greatest(levels.available_quantity, 0) * items.unit_cost)::decimal(18, 2) as stock_value_at_cost,
        levels.updated_at
    from levels
    left join variants
        on levels.inventory_item_id = variants.inventory_item_id
    left join items
        on levels.inventory_item_id = items.inventory_item_id
    left join locations
        on levels.location_id = locations.location_id
)

select * from final
