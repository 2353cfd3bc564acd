with source as (
    {{ raw_source('shop', 'products') }}
),

renamed as (
    select
        id as product_id,
        title as product_title,
        handle as product_handle,
        product_type,
        vendor,
        status as product_status,
        created_at,
        updated_at,
        published_at,
        _dlt_load_id
    from source
)

select * from renamed
