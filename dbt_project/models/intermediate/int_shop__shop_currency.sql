-- The shop currency: the currency of the shop's (non-test) orders. Shopify reports order
-- amounts in the shop currency, so there is one; the most frequent wins if a history
-- ever mixes two. No row when the shop has no orders yet.
select
    currency as shop_currency
from {{ ref('stg_shop__orders') }}
where not is_test
  and currency is not null
group by currency
order by count(*) desc, currency
limit 1
