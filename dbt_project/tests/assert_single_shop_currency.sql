{{ config(severity='warn') }}
-- Shopify reports order amounts in the shop currency, so non-test orders share one
-- currency; the daily marts rely on it when summing money.
-- Every row on every run: a new order's currency must match the old orders' (one scan of a
-- dictionary-encoded column, at the cost floor of a test even on the medium shop).
select count(distinct currency) as currencies
from {{ ref('fct_orders') }}
having count(distinct currency) > 1
