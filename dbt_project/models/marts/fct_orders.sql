{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='order_id',
        on_schema_change='fail',
        pre_hook="{{ record_test_window('_source_load_id') }}",
        post_hook="{{ delete_test_orders() }}"
    )
}}

-- One row per non-test order with its line and refund totals and net revenue.
-- Incremental: rebuilds each order touched by a newer dlt load (the order, one of its
-- lines or refunds; a refund reloads the order), so the result equals a full refresh.
-- The post-hook drops an order that became a test order (Shopify never does this; a
-- resent file drop might), which the delete+insert batch cannot see.

with

{% if is_incremental() %}
changed_orders as (
    {{ changed_order_ids() }}
),
{% endif %}

orders as (
    select * from {{ ref('stg_shop__orders') }}
    where not is_test
    {% if is_incremental() %}and order_id in (select order_id from changed_orders){% endif %}
),

line_totals as (
    select
        order_id,
        count(*) as line_count,
        sum(quantity)::bigint as units,
        max(_dlt_load_id) as _dlt_load_id
    from {{ ref('stg_shop__order_line_items') }}
    {% if is_incremental() %}where order_id in (select order_id from changed_orders){% endif %}
    group by order_id
),

refund_totals as (
    select
        order_id,
        count(distinct refund_id) as refund_count,
        sum(refunded_quantity)::bigint as refunded_quantity,
        sum(refunded_amount) as refunded_amount,
        max(_dlt_load_id) as _dlt_load_id
    from {{ ref('stg_shop__order_refund_line_items') }}
    {% if is_incremental() %}where order_id in (select order_id from changed_orders){% endif %}
    group by order_id
),

final as (
    select
        orders.order_id,
        orders.order_name,
        orders.order_number,
        orders.customer_pseudonym,
        orders.source_name,
        orders.created_at,
        orders.processed_at,
        {{ order_date('orders.processed_at', 'orders.created_at') }} as order_date,
        orders.order_updated_at,
        orders.cancelled_at,
        orders.cancelled_at is not null as is_cancelled,
        orders.cancel_reason,
        orders.closed_at,
        orders.financial_status,
        orders.fulfillment_status,
        orders.discount_codes,
        orders.currency,
        coalesce(line_totals.line_count, 0) as line_count,
        coalesce(line_totals.units, 0) as units,
        orders.total_line_items_price,
        orders.total_discounts,
        orders.subtotal_price,
        orders.total_shipping_price,
        orders.total_tax,
        orders.total_price,
        coalesce(refund_totals.refund_count, 0) as refund_count,
        coalesce(refund_totals.refunded_quantity, 0) as refunded_quantity,
        coalesce(refund_totals.refunded_amount, 0)::decimal(18, 2) as refunded_amount,
        case when orders.cancelled_at is not null then 0
             else orders.subtotal_price - coalesce(refund_totals.refunded_amount, 0)
        end::decimal(18, 2) as net_revenue,
        greatest(
            orders._dlt_load_id,
            coalesce(line_totals._dlt_load_id, ''),
            coalesce(refund_totals._dlt_load_id, '')
        ) as _source_load_id
    from orders
    left join line_totals
        on orders.order_id = line_totals.order_id
    left join refund_totals
        on orders.order_id = refund_totals.order_id
)

select * from final
