{#- The newest dlt load id a incremental model has already absorbed ('' when empty).
    Every incremental mart stores, per row, `_source_load_id`: the greatest `_dlt_load_id`
    of the raw rows it was computed from. dlt load ids are unix-epoch strings
    ('1764000000.123456'), increasing with every load (loads of a tenant are serialised by
    its writer lock), so a plain string comparison orders them. -#}
{% macro load_watermark() -%}
    (select coalesce(max(_source_load_id), '') from {{ this }})
{%- endmacro %}

{#- The order date: the UTC calendar day the order was processed (imports keep the original
    processed_at; created_at is the import time). -#}
{% macro order_date(processed_at, created_at) -%}
    cast(timezone('UTC', coalesce({{ processed_at }}, {{ created_at }})) as date)
{%- endmacro %}

{#- Orders touched by a load newer than this model's watermark: the order itself, one of
    its lines or one of its refunds (a refund makes dlt reload the order). -#}
{% macro changed_order_ids() -%}
    select order_id from {{ ref('stg_shop__orders') }}
    where _dlt_load_id > {{ load_watermark() }}
    union
    select order_id from {{ ref('stg_shop__order_line_items') }}
    where _dlt_load_id > {{ load_watermark() }}
    union
    select order_id from {{ ref('stg_shop__order_refund_line_items') }}
    where _dlt_load_id > {{ load_watermark() }}
{%- endmacro %}

{#- Order days a daily model must recompute: days holding a row of `fact` rebuilt from a
    newer load, and days of reloaded raw orders, including ones the fact now leaves out
    (orders that became test orders). -#}
{% macro changed_order_days(fact) -%}
    select order_date
    from {{ ref(fact) }}
    where _source_load_id > {{ load_watermark() }}
    union
    select {{ order_date('processed_at', 'created_at') }}
    from {{ ref('stg_shop__orders') }}
    where _dlt_load_id > {{ load_watermark() }}
{%- endmacro %}

{#- (Order day, variant) pairs a per-variant daily model must recompute: pairs holding a line
    of fct_order_lines rebuilt from a newer load (a changed order, or a variant re-costed
    across its history), and pairs of reloaded raw orders' lines, including ones the fact now
    leaves out (orders that became test orders). Finer than changed_order_days: a cost change
    of one variant touches its own days only. -#}
{% macro changed_order_day_variants() -%}
    select order_date, variant_id
    from {{ ref('fct_order_lines') }}
    where _source_load_id > {{ load_watermark() }}
      and variant_id is not null
    union
    select {{ order_date('orders.processed_at', 'orders.created_at') }}, lines.variant_id
    from {{ ref('stg_shop__orders') }} as orders
    inner join {{ ref('stg_shop__order_line_items') }} as lines
        on orders.order_id = lines.order_id
    where orders._dlt_load_id > {{ load_watermark() }}
      and lines.variant_id is not null
{%- endmacro %}

{#- Post-hook of the order facts: drop orders that became test orders, which a
    delete+insert batch (built from non-test orders only) cannot remove. -#}
{% macro delete_test_orders() -%}
    delete from {{ this }}
    where order_id in (select order_id from {{ ref('stg_shop__orders') }} where is_test)
{%- endmacro %}

{#- Daily report facts (GA4, Google Ads) are incremental by load: a run takes the staged rows
    of loads newer than the model's watermark and replaces the rows with the same key
    (reports restate recent days as conversions come in: dlt merges them under a new load
    id). Use as `where {{ newer_loads() }}` on the staging CTE; true on a full refresh. -#}
{% macro newer_loads() -%}
    {%- if is_incremental() -%}_dlt_load_id > {{ load_watermark() }}{%- else -%}true{%- endif -%}
{%- endmacro %}
