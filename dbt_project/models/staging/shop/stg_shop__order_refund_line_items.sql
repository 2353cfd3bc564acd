with source as (
    {{ raw_source('shop', 'order_refund_line_items') }}
),

renamed as (
    select
        id as refund_line_id,
        refund_id,
        order_id,
        line_item_id as order_line_id,
        quantity as refunded_quantity,
        subtotal as refunded_amount,
        created_at as refunded_at,
        order_updated_at,
        _dlt_load_id
    from source
)

select * from renamed
