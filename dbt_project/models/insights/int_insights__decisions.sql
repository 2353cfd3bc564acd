-- What merchants decided about each opportunity, from the in-app events: one row per raised
-- opportunity with at least one opportunity_dismissed or opportunity_actioned event. The
-- latest of those events is its current decision (it drives the status); whether it was
-- ever actioned or dismissed feeds the rule's action rate; its first action is followed up.
-- Events about opportunities that were never raised here are ignored.

with

decision_events as (
    select
        opportunity_id,
        event_at,
        event_date,
        case event_name
            when 'opportunity_dismissed' then 'dismissed'
            when 'opportunity_actioned' then 'actioned'
        end as decision
    from {{ ref('stg_app__app_events') }}
    where event_name in ('opportunity_dismissed', 'opportunity_actioned')
      and opportunity_id is not null
),

known_opportunities as (
    select opportunity_id, opportunity_type from {{ ref('int_insights__detections') }}
),

known_events as (
    select decision_events.*, known_opportunities.opportunity_type
    from decision_events
    inner join known_opportunities on known_opportunities.opportunity_id = decision_events.opportunity_id
),

latest_decisions as (
    -- ties at the same instant: dismissed wins (the cautious reading)
    select opportunity_id, opportunity_type, decision, event_at as decided_at, event_date as decided_on
    from known_events
    qualify row_number() over (partition by opportunity_id order by event_at desc, decision desc) = 1
),

decision_summaries as (
    select
        opportunity_id,
        bool_or(decision = 'actioned') as is_actioned,
        bool_or(decision = 'dismissed') as is_dismissed,
        min(event_date) filter (where decision = 'actioned') as first_actioned_on
    from known_events
    group by opportunity_id
),

dismissal_impacts as (
    -- the impact the merchant saw when dismissing: the opportunity's latest day before the
    -- dismissal day (the newest the app could show), else its first day after it
    select latest_decisions.opportunity_id, history.impact_amount as impact_when_dismissed
    from latest_decisions
    inner join {{ ref('opportunity_history') }} as history
        on history.opportunity_id = latest_decisions.opportunity_id
    where latest_decisions.decision = 'dismissed'
    qualify row_number() over (
        partition by latest_decisions.opportunity_id
        order by history.as_of_date >= latest_decisions.decided_on,
                 abs(history.as_of_date - latest_decisions.decided_on)
    ) = 1
),

final as (
    select
        latest_decisions.opportunity_id,
        latest_decisions.opportunity_type,
        latest_decisions.decision,
        latest_decisions.decided_at,
        latest_decisions.decided_on,
        dismissal_impacts.impact_when_dismissed,
        decision_summaries.is_actioned,
        decision_summaries.is_dismissed,
        decision_summaries.first_actioned_on
    from latest_decisions
    inner join decision_summaries on decision_summaries.opportunity_id = latest_decisions.opportunity_id
    left join dismissal_impacts on dismissal_impacts.opportunity_id = latest_decisions.opportunity_id
)

select * from final
