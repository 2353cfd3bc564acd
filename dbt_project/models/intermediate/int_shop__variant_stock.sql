-- Available stock of each variant summed over the locations that stock it.
select
    variants.variant_id,
    count(levels.location_id) as stocked_location_count,
    sum(levels.available_quantity)::bigint as total_available_quantity
from {{ ref('stg_shop__product_variants') }} as variants
inner join {{ ref('stg_shop__inventory_levels') }} as levels
    on variants.inventory_item_id = levels.inventory_item_id
group by variants.variant_id
