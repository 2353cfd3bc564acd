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
