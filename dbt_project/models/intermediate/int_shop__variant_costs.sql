-- Current unit cost of each variant (from its inventory item), with the load that wrote the
-- cost: fct_order_lines uses it to rebuild the lines of a variant whose cost changed.
select
    variants.variant_id,
    items.unit_cost,
    items._dlt_load_id
from {{ ref('stg_shop__product_variants') }} as variants
inner join {{ ref('stg_shop__inventory_items') }} as items
    on variants.inventory_item_id = items.inventory_item_id
