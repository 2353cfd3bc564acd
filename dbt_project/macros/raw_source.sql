{#-
    raw_source(source_name, table_name): the select a staging model reads a raw table with.

    Calls source() exactly once (lineage is unchanged) and selects the columns declared for
    the table in its _<source>__sources.yml, so the staging SQL never depends on `select *`.
    Schema tolerant where it is cheap:
      - a declared column missing from the raw table becomes a typed NULL (warned in the log);
      - a raw table that does not exist yet (e.g. an import without line items) becomes a
        typed, empty relation, so the whole project still builds.
    `_dlt_load_id` is required whenever the table exists: incremental marts rely on it.
-#}
{% macro raw_source(source_name, table_name) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if not execute -%}
        select * from {{ relation }}
    {%- else -%}
        {%- set node = graph.sources['source.' ~ project_name ~ '.' ~ source_name ~ '.' ~ table_name] -%}
        {%- set declared = node.columns.values() | list -%}
        {%- if declared | length == 0 -%}
            {{ exceptions.raise_compiler_error("raw_source: no columns declared for source " ~ source_name ~ "." ~ table_name) }}
        {%- endif -%}
        {%- set existing = adapter.get_relation(database=relation.database, schema=relation.schema, identifier=relation.identifier) -%}
        {%- if existing is none -%}
            {{ log("raw_source: " ~ relation ~ " does not exist; staging it as an empty relation", info=true) }}
            select
            {%- for col in declared %}
                cast(null as {{ col.data_type }}) as {{ adapter.quote(col.name) }}{{ "," if not loop.last }}
            {%- endfor %}
            where false
        {%- else -%}
            {%- set present = adapter.get_columns_in_relation(existing) | map(attribute='name') | map('lower') | list -%}
            select
            {%- for col in declared %}
                {%- if col.name | lower in present or col.name == '_dlt_load_id' %}
                {{ adapter.quote(col.name) }}{{ "," if not loop.last }}
                {%- else %}
                {{- log("raw_source: column " ~ col.name ~ " missing from " ~ relation ~ "; staged as NULL", info=true) }}
                cast(null as {{ col.data_type }}) as {{ adapter.quote(col.name) }}{{ "," if not loop.last }}
                {%- endif %}
            {%- endfor %}
            from {{ relation }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
