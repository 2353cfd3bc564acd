-- Every opportunity ever raised for the tenant, one row each, ranked: the product of the
-- insights layer. Fields are those of its last day raised; first/last_detected_at span its
-- history. Status as of the as-of day A:
--   resolved   not raised on A (its condition cleared);
--   dismissed  latest decision a dismissal less than dismiss_snooze_days ago, and its impact
--              has not grown by dismiss_reopen_growth over the impact when dismissed;
--   actioned   latest decision an action, and it has not resolved since (a re-raise after
--              that is a new problem: open);
--   open       otherwise.
-- confidence = clamp(base_confidence x rule confidence factor (rule_feedback), 0.05, 1);
-- priority ranks open and actioned ones by impact_amount x confidence (1 = first).
-- Costs one row per opportunity, whatever the length of the history.

with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

detections as (
    select * from {{ ref('int_insights__detections') }}
),

decisions as (
    select * from {{ ref('int_insights__decisions') }}
),

rule_feedback as (
    select * from {{ ref('rule_feedback') }}
),

with_feedback as (
    select
        detections.*,
        decisions.decision,
        decisions.decided_on,
        decisions.impact_when_dismissed,
        coalesce(rule_feedback.confidence_factor, 1.0) as confidence_factor
    from detections
    left join decisions on decisions.opportunity_id = detections.opportunity_id
    left join rule_feedback on rule_feedback.opportunity_type = detections.opportunity_type
),

statuses as (
    select
        *,
        case
            when not coalesce(is_raised, false) then 'resolved'
            when decision = 'dismissed'
                and decided_on > (select as_of_date from as_of) - {{ var('dismiss_snooze_days') | int }}
                and impact_amount < impact_when_dismissed * (1 + {{ var('dismiss_reopen_growth') }})
                then 'dismissed'
            when decision = 'actioned'
                and (last_missed_at is null or last_missed_at < decided_on)
                then 'actioned'
            else 'open'
        end as status,
        least(greatest(base_confidence * confidence_factor, 0.05), 1.0) as confidence
    from with_feedback
),

ranked as (
    select
        *,
        case when status in ('open', 'actioned') then
            row_number() over (
                partition by status in ('open', 'actioned')
                order by impact_amount * confidence desc, opportunity_id
            )
        end as priority
    from statuses
),

final as (
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
        confidence,
        priority,
        (select as_of_date from as_of) as as_of_date,
        first_detected_at,
        last_detected_at,
        status
    from ranked
)

select * from final
