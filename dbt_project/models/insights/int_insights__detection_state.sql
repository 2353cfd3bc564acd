{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='opportunity_id',
        on_schema_change='fail',
        pre_hook="{{ record_test_window('last_detected_at') }}"
    )
}}

-- One row per opportunity raised before the current as-of day A: its first and last day
-- raised, the last day it was missed (an evaluated day, after it had been raised, on which it
-- was not raised: it had resolved), and its fields as of its last day. int_insights__detections
-- adds day A on top, so a re-run of the same A never double-counts it.

-- Incremental (delete+insert on opportunity_id): a run absorbs only the history days after
-- the last one absorbed and before A (normally one day), so it costs the new days, not the
-- history. Evaluated days are the days on which some opportunity was raised. Unlike
-- opportunity_history, this state can be rebuilt from the history with --full-refresh
-- (needed if the as-of day ever moves back).

with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

previous_state as (
    {% if is_incremental() %}
    select opportunity_id, first_detected_at, last_detected_at, last_missed_at from {{ this }}
    {% else %}
    select
        cast(null as varchar) as opportunity_id,
        cast(null as date) as first_detected_at,
        cast(null as date) as last_detected_at,
        cast(null as date) as last_missed_at
    where false
    {% endif %}
),

absorbed_through as (
    -- the latest day absorbed (null on a full refresh)
    select max(last_detected_at) as day from previous_state
),

new_detections as (
    select * from {{ ref('opportunity_history') }}
    where as_of_date < (select as_of_date from as_of)
      and as_of_date > coalesce((select day from absorbed_through), date '0001-01-01')
),

evaluated_days as (
    -- the new days plus the last absorbed one, each with the evaluated day before it
    select day, lag(day) over (order by day) as previous_evaluated_day
    from (
        select distinct as_of_date as day from new_detections
        union
        select day from absorbed_through where day is not null
    )
),

detections_with_gaps as (
    select
        new_detections.opportunity_id,
        new_detections.as_of_date,
        coalesce(
            lag(new_detections.as_of_date) over (
                partition by new_detections.opportunity_id order by new_detections.as_of_date),
            previous_state.last_detected_at
        ) as previous_detected_at,
        evaluated_days.previous_evaluated_day
    from new_detections
    inner join evaluated_days on evaluated_days.day = new_detections.as_of_date
    left join previous_state on previous_state.opportunity_id = new_detections.opportunity_id
),

new_spans as (
    -- raised again after an evaluated day without it: it was missed on that day
    select
        opportunity_id,
        min(as_of_date) as first_detected_at,
        max(as_of_date) as last_detected_at,
        max(case when previous_detected_at < previous_evaluated_day then previous_evaluated_day end)
            as last_missed_at
    from detections_with_gaps
    group by opportunity_id
),

latest_detections as (
    select * from new_detections
    qualify row_number() over (partition by opportunity_id order by as_of_date desc) = 1
),

final as (
    select
        latest_detections.opportunity_id,
        latest_detections.opportunity_type,
        latest_detections.entity_type,
        latest_detections.entity_id,
        latest_detections.title,
        latest_detections.explanation,
        latest_detections.impact_amount,
        latest_detections.impact_kind,
        latest_detections.currency,
        latest_detections.metric_name,
        latest_detections.metric_value,
        latest_detections.metric_better,
        latest_detections.base_confidence,
        coalesce(previous_state.first_detected_at, new_spans.first_detected_at) as first_detected_at,
        new_spans.last_detected_at,
        greatest(previous_state.last_missed_at, new_spans.last_missed_at) as last_missed_at
    from new_spans
    inner join latest_detections on latest_detections.opportunity_id = new_spans.opportunity_id
    left join previous_state on previous_state.opportunity_id = new_spans.opportunity_id
)

select * from final
