with source as (
    {{ raw_source('shop', 'inventory_levels') }}
),

renamed as (
    select
        inventory_item_id,
        location_id,
        available as available_quantity,
        updated_at,
        _dlt_load_id
    from source
)

select * from renamed
