{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='date_day',
        on_schema_change='fail',
        pre_hook=[
            "{% if is_incremental() %}delete from {{ this }} where date_day in ({{ changed_order_days('fct_orders') }}){% endif %}",
            "{{ record_test_window('_source_load_id') }}"
        ]
    )
}}

-- Shop sales per UTC order day (days without orders have no row). Cancelled orders count
-- in cancelled_order_count only; refunds are attributed to the day of their order.
-- Incremental: recomputes every day holding an order that fct_orders rebuilt from a newer
-- load (new orders, and old orders refunded or cancelled since), whole days at a time.

-- The pre-hook empties the days about to be recomputed first: delete+insert alone replaces
-- only days the new batch has rows for, so a day whose last row went away (its only order
-- cancelled or turned into a test order) would keep its stale rows.
-- The second pre-hook then records the window the tests read (macros/changed_rows.sql): the
-- watermark left after that delete, the one this run's batch is selected against.

-- depends_on: {{ ref('stg_shop__orders') }}

with

{% if is_incremental() %}
changed_days as (
    {{ changed_order_days('fct_orders') }}
),
{% endif %}

orders as (
    select * from {{ ref('fct_orders') }}
    {% if is_incremental() %}where order_date in (select order_date from changed_days){% endif %}
),

final as (
    select
        order_date as date_day,
        min(currency) as currency,
        count(*) filter (where not is_cancelled) as order_count,
        count(*) filter (where is_cancelled) as cancelled_order_count,
        coalesce(sum(units) filter (where not is_cancelled), 0)::bigint as units_sold,
        coalesce(sum(refunded_quantity) filter (where not is_cancelled), 0)::bigint as units_refunded,
        coalesce(sum(total_line_items_price) filter (where not is_cancelled), 0)::decimal(18, 2) as gross_revenue,
        coalesce(sum(total_discounts) filter (where not is_cancelled), 0)::decimal(18, 2) as discounts,
        coalesce(sum(subtotal_price) filter (where not is_cancelled), 0)::decimal(18, 2) as net_sales,
        coalesce(sum(refunded_amount) filter (where not is_cancelled), 0)::decimal(18, 2) as refunds,
        coalesce(sum(net_revenue), 0)::decimal(18, 2) as net_revenue,
        coalesce(sum(total_shipping_price) filter (where not is_cancelled), 0)::decimal(18, 2) as shipping,
        coalesce(sum(total_tax) filter (where not is_cancelled), 0)::decimal(18, 2) as tax,
        max(_source_load_id) as _source_load_id
    from orders
    group by order_date
)

select * from final
