{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='order_line_id',
        on_schema_change='fail',
        pre_hook="{{ record_test_window('_source_load_id') }}",
        post_hook="{{ delete_test_orders() }}"
    )
}}

-- One row per order line of a non-test order, priced, costed and net of refunds.
-- Incremental: rebuilds every line of each order touched by a newer dlt load (the order,
-- any of its lines or refunds) and of each variant whose unit cost changed, so the result
-- equals a full refresh. Cost is the variant's current unit cost (Shopify keeps no history).
-- The post-hook drops the lines of an order that became a test order.

with

{% if is_incremental() %}
-- A reloaded inventory item whose cost is what the built lines already carry changes
-- nothing: compare values, or every sync of an item would rebuild its whole sales history.
cost_changed_variants as (
    select costs.variant_id
    from {{ ref('int_shop__variant_costs') }} as costs
    where costs._dlt_load_id > {{ load_watermark() }}
      and exists (
          select 1 from {{ this }} as built
          where built.variant_id = costs.variant_id
            and built.unit_cost is distinct from costs.unit_cost
      )
),

changed_orders as (
    {{ changed_order_ids() }}
    union
    select lines.order_id
    from {{ ref('stg_shop__order_line_items') }} as lines
    inner join cost_changed_variants
        on lines.variant_id = cost_changed_variants.variant_id
),
{% endif %}

orders as (
    select * from {{ ref('stg_shop__orders') }}
    where not is_test
    {% if is_incremental() %}and order_id in (select order_id from changed_orders){% endif %}
),

lines as (
    select * from {{ ref('stg_shop__order_line_items') }}
    {% if is_incremental() %}where order_id in (select order_id from changed_orders){% endif %}
),

refunds as (
    select
        order_line_id,
        sum(refunded_quantity)::bigint as refunded_quantity,
        sum(refunded_amount) as refunded_amount,
        max(_dlt_load_id) as _dlt_load_id
    from {{ ref('stg_shop__order_refund_line_items') }}
    {% if is_incremental() %}where order_id in (select order_id from changed_orders){% endif %}
    group by order_line_id
),

costs as (
    select * from {{ ref('int_shop__variant_costs') }}
),

joined as (
    select
        lines.order_line_id,
        lines.order_id,
        orders.order_name,
        {{ order_date('orders.processed_at', 'orders.created_at') }} as order_date,
        coalesce(orders.processed_at, orders.created_at) as ordered_at,
        orders.order_updated_at,
        orders.cancelled_at is not null as is_cancelled,
        lines.product_id,
        lines.variant_id,
        lines.sku,
        lines.line_title,
        orders.currency,
        lines.quantity,
        lines.price,
        lines.line_discount,
        costs.unit_cost,
        coalesce(refunds.refunded_quantity, 0) as refunded_quantity,
        coalesce(refunds.refunded_amount, 0)::decimal(18, 2) as refunded_amount,
        greatest(
            orders._dlt_load_id,
            lines._dlt_load_id,
            coalesce(refunds._dlt_load_id, ''),
            coalesce(costs._dlt_load_id, '')
        ) as _source_load_id
    from lines
    inner join orders
        on lines.order_id = orders.order_id
    left join refunds
        on lines.order_line_id = refunds.order_line_id
    left join costs
        on lines.variant_id = costs.variant_id
),

final as (
    select
        order_line_id,
        order_id,
        order_name,
        order_date,
        ordered_at,
        order_updated_at,
        is_cancelled,
        product_id,
        variant_id,
        sku,
        line_title,
        currency,
        quantity,
        price,
        (price * quantity)::decimal(18, 2) as gross_sales,
        line_discount,
        (price * quantity - line_discount)::decimal(18, 2) as net_sales,
        unit_cost,
        (unit_cost * quantity)::decimal(18, 2) as cost_of_goods,
        (price * quantity - line_discount - unit_cost * quantity)::decimal(18, 2) as gross_margin,
        refunded_quantity,
        refunded_amount,
        case when is_cancelled then 0 else quantity - refunded_quantity end as net_quantity,
        case when is_cancelled then 0
             else price * quantity - line_discount - refunded_amount
        end::decimal(18, 2) as net_revenue,
        case when is_cancelled then 0
             else price * quantity - line_discount - refunded_amount
                  - unit_cost * (quantity - refunded_quantity)
        end::decimal(18, 2) as net_margin,
        _source_load_id
    from joined
)

select * from final
