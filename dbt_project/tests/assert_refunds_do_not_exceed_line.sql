-- Shopify never refunds more units of a line than were ordered.
select order_line_id, quantity, refunded_quantity
from {{ ref('fct_order_lines') }}
where refunded_quantity > quantity
   or refunded_quantity < 0
