with source as (
    {{ raw_source('shop', 'variant_price_history') }}
),

renamed as (
    select
        variant_id,
        price,
        compare_at_price,
        valid_from,
        _dlt_load_id
    from source
)

select * from renamed
