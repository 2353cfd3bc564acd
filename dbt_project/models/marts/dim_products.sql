-- One row per product with variant counts, price range and total available stock.
with

products as (
    select * from {{ ref('stg_shop__products') }}
),

variant_summary as (
    select
        product_id,
        count(*) as variant_count,
        min(price) as min_price,
        max(price) as max_price,
        sum(total_available_quantity)::bigint as total_available_quantity
    from {{ ref('dim_variants') }}
    group by product_id
),

final as (
    select
        products.product_id,
        products.product_title,
        products.product_handle,
        products.product_type,
        products.vendor,
        products.product_status,
        (select shop_currency from {{ ref('int_shop__shop_currency') }}) as currency,
        coalesce(variant_summary.variant_count, 0) as variant_count,
        variant_summary.min_price,
        variant_summary.max_price,
        variant_summary.total_available_quantity,
        products.created_at,
        products.updated_at,
        products.published_at
    from products
    left join variant_summary
        on products.product_id = variant_summary.product_id
)

select * from final
