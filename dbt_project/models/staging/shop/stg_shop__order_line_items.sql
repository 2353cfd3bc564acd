with source as (
    {{ raw_source('shop', 'order_line_items') }}
),

renamed as (
    select
        id as order_line_id,
        order_id,
        product_id,
        variant_id,
        sku,
        title as line_title,
        quantity,
        price,
        coalesce(total_discount, 0)::decimal(18, 2) as line_discount,
        order_updated_at,
        _dlt_load_id
    from source
)

select * from renamed
