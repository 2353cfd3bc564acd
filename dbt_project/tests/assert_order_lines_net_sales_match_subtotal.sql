{{ config(severity='warn', meta={'dagster': {'ref': {'name': 'fct_order_lines'}}}) }}
-- The lines' net sales (after their allocated discounts) sum to the order subtotal within a
-- cent. Warn only: discounts Shopify does not allocate to lines (e.g. some order-level or
-- shipping discounts in older API data) legitimately break it.
select
    orders.order_id,
    orders.subtotal_price,
    sum(lines.net_sales) as sum_line_net_sales
from {{ ref('fct_orders') }} as orders
inner join {{ ref('fct_order_lines') }} as lines
    on orders.order_id = lines.order_id
group by orders.order_id, orders.subtotal_price
having abs(sum(lines.net_sales) - orders.subtotal_price) > 0.01
