{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['date_day', 'variant_id'],
        on_schema_change='fail',
        pre_hook=[
            "{% if is_incremental() %}delete from {{ this }} where (date_day, variant_id) in ({{ changed_order_day_variants() }}){% endif %}",
            "{{ record_test_window('_source_load_id') }}"
        ]
    )
}}

-- Sales per UTC order day and variant, from non-cancelled orders (lines without a variant,
-- e.g. custom items, are in fct_daily_sales only). Incremental: recomputes the (day,
-- variant) pairs holding a line fct_order_lines rebuilt from a newer load, so a re-costed
-- variant costs its own days, not every variant's, and a variant that drops out of a day
-- (its order cancelled) disappears as on a full refresh.

-- The pre-hook empties the pairs about to be recomputed first: delete+insert alone replaces
-- only pairs the new batch has rows for, so a pair whose last line went away (its only order
-- cancelled or turned into a test order) would keep its stale row.
-- The second pre-hook then records the window the tests read (macros/changed_rows.sql): the
-- watermark left after that delete, the one this run's batch is selected against.

-- depends_on: {{ ref('stg_shop__orders') }}
-- depends_on: {{ ref('stg_shop__order_line_items') }}

with

{% if is_incremental() %}
changed as (
    {{ changed_order_day_variants() }}
),
{% endif %}

lines as (
    select * from {{ ref('fct_order_lines') }}
    where variant_id is not null
      and not is_cancelled
    {% if is_incremental() %}and (order_date, variant_id) in (select order_date, variant_id from changed){% endif %}
),

final as (
    select
        order_date as date_day,
        variant_id,
        min(product_id) as product_id,
        min(currency) as currency,
        count(distinct order_id) as order_count,
        sum(quantity)::bigint as units_sold,
        sum(refunded_quantity)::bigint as units_refunded,
        sum(net_quantity)::bigint as net_units,
        sum(gross_sales)::decimal(18, 2) as gross_revenue,
        sum(line_discount)::decimal(18, 2) as discounts,
        sum(net_sales)::decimal(18, 2) as net_sales,
        sum(refunded_amount)::decimal(18, 2) as refunds,
        sum(net_revenue)::decimal(18, 2) as net_revenue,
        sum(cost_of_goods)::decimal(18, 2) as cost_of_goods,
        sum(net_margin)::decimal(18, 2) as net_margin,
        max(_source_load_id) as _source_load_id
    from lines
    group by order_date, variant_id
)

select * from final
