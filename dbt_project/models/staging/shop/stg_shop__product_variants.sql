with source as (
    {{ raw_source('shop', 'product_variants') }}
),

renamed as (
    select
        id as variant_id,
        product_id,
        title as variant_title,
        sku,
        price,
        compare_at_price,
        inventory_policy,
        inventory_management,
        inventory_item_id,
        inventory_quantity,
        created_at,
        updated_at,
        _dlt_load_id
    from source
)

select * from renamed
