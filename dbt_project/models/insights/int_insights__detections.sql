-- One row per opportunity ever raised, up to and including the current as-of day A: first and
-- last day raised, the last day it was missed (resolved in between), whether it is raised on
-- A, and its fields as of its last day. The detection state (days before A) plus day A.
-- Costs one row per opportunity, whatever the length of the history.

with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

state as (
    select * from {{ ref('int_insights__detection_state') }}
),

raised_today as (
    select * from {{ ref('opportunity_history') }}
    where as_of_date = (select as_of_date from as_of)
),

previous_evaluated_day as (
    -- the latest day before A on which any opportunity was raised
    select max(last_detected_at) as day from state
),

raised as (
    select
        raised_today.opportunity_id,
        raised_today.opportunity_type,
        raised_today.entity_type,
        raised_today.entity_id,
        raised_today.title,
        raised_today.explanation,
        raised_today.impact_amount,
        raised_today.impact_kind,
        raised_today.currency,
        raised_today.metric_name,
        raised_today.metric_value,
        raised_today.metric_better,
        raised_today.base_confidence,
        coalesce(state.first_detected_at, raised_today.as_of_date) as first_detected_at,
        raised_today.as_of_date as last_detected_at,
        case
            when state.last_detected_at < (select day from previous_evaluated_day)
                then (select day from previous_evaluated_day)
            else state.last_missed_at
        end as last_missed_at,
        true as is_raised
    from raised_today
    left join state on state.opportunity_id = raised_today.opportunity_id
),

not_raised as (
    select
        opportunity_id,
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
        base_confidence,
        first_detected_at,
        last_detected_at,
        last_missed_at,
        false as is_raised
    from state
    where not exists (
        select 1 from raised_today where raised_today.opportunity_id = state.opportunity_id
    )
),

final as (
    select * from raised
    union all
    select * from not_raised
)

select * from final
