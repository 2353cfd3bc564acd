-- Shopify never refunds more units of a line than were ordered. Checks the lines the last run
-- of fct_order_lines wrote (every line after a full build; macros/changed_rows.sql).
select order_line_id, quantity, refunded_quantity
from {{ ref('fct_order_lines') }}
where {{ changed_rows(ref('fct_order_lines')) }}
  and (refunded_quantity > quantity
       or refunded_quantity < 0)
