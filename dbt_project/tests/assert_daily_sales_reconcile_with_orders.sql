{{ config(meta={'dagster': {'ref': {'name': 'fct_daily_sales'}}}) }}
-- The incremental daily aggregates agree with the order facts they summarise: guards the
-- day-rebuild logic of fct_daily_sales and fct_daily_variant_sales (any drift between an
-- incremental run and a full refresh shows up here).
-- It reads every row on every run, on purpose: the drift it guards against sits in rows the
-- run did not write (a day that kept an order which moved away), which a test scoped to the
-- run's rows (macros/changed_rows.sql) cannot see.
with

orders as (
    select order_date as date_day, count(*) filter (where not is_cancelled) as order_count,
           sum(net_revenue) as net_revenue
    from {{ ref('fct_orders') }}
    group by order_date
),

lines as (
    select order_date as date_day, sum(net_revenue) as net_revenue
    from {{ ref('fct_order_lines') }}
    where variant_id is not null and not is_cancelled
    group by order_date
),

daily as (
    select date_day, order_count, net_revenue from {{ ref('fct_daily_sales') }}
),

daily_variant as (
    select date_day, sum(net_revenue) as net_revenue
    from {{ ref('fct_daily_variant_sales') }}
    group by date_day
)

select 'fct_daily_sales' as model, coalesce(orders.date_day, daily.date_day) as date_day
from orders
full outer join daily on orders.date_day = daily.date_day
where orders.order_count is distinct from daily.order_count
   or orders.net_revenue is distinct from daily.net_revenue

union all

select 'fct_daily_variant_sales', coalesce(lines.date_day, daily_variant.date_day)
from lines
full outer join daily_variant on lines.date_day = daily_variant.date_day
where lines.net_revenue is distinct from daily_variant.net_revenue
