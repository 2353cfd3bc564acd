with source as (
    {{ raw_source('shop', 'orders') }}
),

renamed as (
    select
        id as order_id,
        name as order_name,
        order_number,
        created_at,
        processed_at,
        updated_at as order_updated_at,
        cancelled_at,
        cancel_reason,
        closed_at,
        financial_status,
        fulfillment_status,
        upper(currency) as currency,
        total_price,
        subtotal_price,
        total_discounts,
        total_tax,
        total_line_items_price,
        total_shipping_price,
        coalesce(test, false) as is_test,
        source_name,
        discount_codes,
        customer_pseudonym,
        _dlt_load_id
    from source
)

select * from renamed
