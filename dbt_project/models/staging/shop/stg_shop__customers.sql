with source as (
    {{ raw_source('shop', 'customers') }}
),

renamed as (
    select
        customer_pseudonym,
        created_at,
        updated_at,
        orders_count,
        total_spent,
        state as customer_state,
        upper(currency) as currency,
        _dlt_load_id
    from source
)

select * from renamed
