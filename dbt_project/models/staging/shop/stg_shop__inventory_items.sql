with source as (
    {{ raw_source('shop', 'inventory_items') }}
),

renamed as (
    select
        id as inventory_item_id,
        sku,
        cost as unit_cost,
        tracked as is_tracked,
        created_at,
        updated_at,
        _dlt_load_id
    from source
)

select * from renamed
