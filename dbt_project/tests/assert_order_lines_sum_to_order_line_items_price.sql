{{ config(meta={'dagster': {'ref': {'name': 'fct_order_lines'}}}) }}
-- Shopify invariant: an order's total_line_items_price is the sum of its lines' price x
-- quantity. Orders without staged lines (e.g. an import without line items) are skipped.
-- A failure means lines are missing, duplicated or mis-joined.
-- Checks the orders the last runs of fct_orders and fct_order_lines rebuilt (every order after
-- a full build; macros/changed_rows.sql): both rebuild an order with all its lines whenever the
-- order, a line or a refund changes, so an order left out has not changed since it was checked.
with

changed_orders as (
    select order_id from {{ ref('fct_orders') }} where {{ changed_rows(ref('fct_orders')) }}
    union
    select order_id from {{ ref('fct_order_lines') }} where {{ changed_rows(ref('fct_order_lines')) }}
)

select
    orders.order_id,
    orders.total_line_items_price,
    sum(lines.gross_sales) as sum_line_gross_sales
from {{ ref('fct_orders') }} as orders
inner join {{ ref('fct_order_lines') }} as lines
    on orders.order_id = lines.order_id
where orders.order_id in (select order_id from changed_orders)
group by orders.order_id, orders.total_line_items_price
having abs(sum(lines.gross_sales) - orders.total_line_items_price) > 0.01
