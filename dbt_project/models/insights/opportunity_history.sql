{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
        on_schema_change='append_new_columns',
        full_refresh=false,
        pre_hook=[
            "{% if is_incremental() %}delete from {{ this }} where as_of_date >= (select as_of_date from {{ ref('int_insights__as_of') }}){% endif %}",
            "{{ record_test_window('as_of_date') }}"
        ]
    )
}}

-- One row per opportunity and as-of day it was raised on: the day's rule output with the
-- stable opportunity_id (md5 of tenant|type|entity). Everything about an opportunity's past
-- (first detection, impact when dismissed, metric at the follow-up) is read from here.

-- Incremental: a run (re)computes only the current as-of day A (delete+insert on
-- as_of_date). The pre-hook first empties A and any later day, so an opportunity that is no
-- longer raised on a re-run of A (new data, changed settings) disappears from A, and a day
-- with no opportunity at all leaves no stale rows. The second pre-hook records the newest day
-- left, so the tests read day A only (macros/changed_rows.sql). The rules only know the
-- present, so this history cannot be rebuilt: full_refresh=false keeps `--full-refresh` from
-- wiping it, and new columns are appended (drop the table by hand to really start over).

with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

raised as (
    select * from {{ ref('int_insights__candidates') }}
    where as_of_date = (select as_of_date from as_of)
),

final as (
    select
        md5({{ dbt.string_literal(var('tenant')) }} || '|' || opportunity_type || '|' || entity_id)
            as opportunity_id,
        as_of_date,
        opportunity_type,
        entity_type,
        entity_id,
        title,
        explanation,
        impact_amount,
        impact_kind,
        currency,
        metric_name,
        metric_value,
        metric_better,
        base_confidence
    from raised
)

select * from final
