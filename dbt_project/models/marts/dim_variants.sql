-- One row per product variant with its product, current unit cost and stock.
with

variants as (
    select * from {{ ref('stg_shop__product_variants') }}
),

products as (
    select * from {{ ref('stg_shop__products') }}
),

items as (
    select * from {{ ref('stg_shop__inventory_items') }}
),

stock as (
    select * from {{ ref('int_shop__variant_stock') }}
),

final as (
    select
        variants.variant_id,
        variants.product_id,
        products.product_title,
        variants.variant_title,
        case
            when variants.variant_title is null or variants.variant_title = 'Default Title'
                then products.product_title
            else products.product_title || ' - ' || variants.variant_title
        end as display_name,
        variants.sku,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency,
        variants.price,
        variants.compare_at_price,
        items.unit_cost,
        (variants.price - items.unit_cost)::decimal(18, 2) as unit_margin,
        variants.inventory_policy,
        variants.inventory_management,
        variants.inventory_item_id,
        items.is_tracked,
        variants.inventory_quantity,
        coalesce(stock.stocked_location_count, 0) as stocked_location_count,
        stock.total_available_quantity,
        variants.created_at,
        variants.updated_at
    from variants
    left join products
        on variants.product_id = products.product_id
    left join items
        on variants.inventory_item_id = items.inventory_item_id
    left join stock
        on variants.variant_id = stock.variant_id
)

select * from final
