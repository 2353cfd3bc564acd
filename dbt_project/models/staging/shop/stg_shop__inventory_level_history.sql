with source as (
    {{ raw_source('shop', 'inventory_level_history') }}
),

renamed as (
    select
        inventory_item_id,
        location_id,
        available as available_quantity,
        valid_from,
        _dlt_load_id
    from source
)

select * from renamed
