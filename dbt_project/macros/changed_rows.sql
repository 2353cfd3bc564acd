{#- Data tests of incremental models look at the rows the last run of the model wrote, not at
    the whole table (see README.md, "Tests of incremental models").

    The window. Each incremental model orders its rows by a column every run only pushes
    forward: `_source_load_id` for the marts, `as_of_date` for opportunity_history,
    `last_detected_at` for int_insights__detection_state. A run writes exactly the rows whose
    value is above the table's newest value before it (the watermark the model itself reads),
    and leaves every row at or below it untouched. (One exception: a daily sales day or pair
    rebuilt only because one of its orders became a test order can keep a value below; it
    holds sums of rows already tested, and the reconcile test reads every day.) The pre-hook `record_test_window(column)`,
    run after the model's own pre-hooks, keeps that value as the table's comment:
    {"column": "_source_load_id", "changed_after": "1764000000.123456"}. A full build (first
    run, --full-refresh) creates a new table without a comment: every row is tested. No column
    is added, so an incremental run still equals a full refresh row by row.

    The tests. A generic test configured with `where: __changed_rows__` is wrapped by
    get_where_subquery below, which replaces the placeholder with `changed_rows(relation)` when
    the test runs (dbt renders a YAML `where` at parse time, and parses once per code version,
    so the window cannot be written into the YAML itself; this is dbt's documented way to
    template `where` at run time). The compiled test then reads
    `(select * from <model> where "_source_load_id" > '1764000000.123456') dbt_subquery`, or
    `where true` after a full build. Singular tests call changed_rows(ref(...)) directly.

    `--vars '{test_all_rows: true}'` tests every row of every model (a periodic full check).
    persist_docs must stay off for these models: it would overwrite the comment (the tests
    would then fall back to every row, which is safe but slow). -#}

{#- Pre-hook of an incremental model: keep the window of this run as the table's comment. -#}
{% macro record_test_window(column) -%}
    {%- if execute and is_incremental() -%}
        {%- set newest = run_query('select max(' ~ adapter.quote(column) ~ ')::varchar from ' ~ this)
                           .columns[0].values()[0] -%}
        {%- set window = tojson({'column': column, 'changed_after': newest}) -%}
        comment on table {{ this }} is '{{ window | replace("'", "''") }}'
    {%- endif -%}
{%- endmacro %}

{#- SQL condition true for the rows of `relation` written by its last run: `true` after a full
    build, with a table without a window, or with var test_all_rows. -#}
{% macro changed_rows(relation) -%}
    {%- set window = none -%}
    {%- if execute and not var('test_all_rows', false) -%}
        {%- set found = run_query(
            "select json_extract_string(comment, '$.column'), "
            ~ "json_extract_string(comment, '$.changed_after') "
            ~ "from (select case when json_valid(comment) then comment end as comment "
            ~ "from duckdb_tables() where database_name = '" ~ relation.database
            ~ "' and schema_name = '" ~ relation.schema
            ~ "' and table_name = '" ~ relation.identifier ~ "')").rows -%}
        {%- if found and found[0][0] and found[0][1] is not none -%}
            {%- set window = found[0] -%}
        {%- endif -%}
    {%- endif -%}
    {%- if window is none -%}
        true
    {%- else -%}
        {{ adapter.quote(window[0]) }} > '{{ window[1] | replace("'", "''") }}'
    {%- endif -%}
{%- endmacro %}

{#- dbt's get_where_subquery (wraps the model of every generic test in its `where` config),
    with the placeholder __changed_rows__ replaced by changed_rows() of the tested model. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where and '__changed_rows__' in where -%}
        {%- set where = where | replace('__changed_rows__', changed_rows(relation)) -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
