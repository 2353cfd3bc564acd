{{ config(meta={'dagster': {'ref': {'name': 'fct_order_lines'}}}) }}
-- Shopify invariant: an order's total_line_items_price is the sum of its lines' price x
-- quantity. Orders without staged lines (e.g. an import without line items) are skipped.
-- A failure means lines are missing, duplicated or mis-joined.
select
    orders.order_id,
    orders.total_line_items_price,
    sum(lines.gross_sales) as sum_line_gross_sales
from {{ ref('fct_orders') }} as orders
inner join {{ ref('fct_order_lines') }} as lines
    on orders.order_id = lines.order_id
group by orders.order_id, orders.total_line_items_price
having abs(sum(lines.gross_sales) - orders.total_line_items_price) > 0.01
