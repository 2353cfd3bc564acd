with source as (
    {{ raw_source('shop', 'locations') }}
),

renamed as (
    select
        id as location_id,
        name as location_name,
        country_code,
        active as is_active,
        created_at,
        updated_at,
        _dlt_load_id
    from source
)

select * from renamed
