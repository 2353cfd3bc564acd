{{ config(severity='warn') }}
-- Shopify reports order amounts in the shop currency, so non-test orders share one
-- currency; the daily marts rely on it when summing money.
select count(distinct currency) as currencies
from {{ ref('fct_orders') }}
having count(distinct currency) > 1
