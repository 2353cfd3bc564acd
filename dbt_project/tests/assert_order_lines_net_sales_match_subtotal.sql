{{ config(severity='warn', meta={'dagster': {'ref': {'name': 'fct_order_lines'}}}) }}
-- The lines' net sales (after their allocated discounts) sum to the order subtotal within a
-- cent. Warn only: discounts Shopify does not allocate to lines (e.g. some order-level or
-- shipping discounts in older API data) legitimately break it.
-- Checks the orders the last runs of fct_orders and fct_order_lines rebuilt, as
-- assert_order_lines_sum_to_order_line_items_price does.
with

changed_orders as (
    select order_id from {{ ref('fct_orders') }} where {{ changed_rows(ref('fct_orders')) }}
    union
    select order_id from {{ ref('fct_order_lines') }} where {{ changed_rows(ref('fct_order_lines')) }}
)

select
    orders.order_id,
    orders.subtotal_price,
    sum(lines.net_sales) as sum_line_net_sales
from {{ ref('fct_orders') }} as orders
inner join {{ ref('fct_order_lines') }} as lines
    on orders.order_id = lines.order_id
where orders.order_id in (select order_id from changed_orders)
group by orders.order_id, orders.subtotal_price
having abs(sum(lines.net_sales) - orders.subtotal_price) > 0.01
