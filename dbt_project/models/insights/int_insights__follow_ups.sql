-- Did acting on an opportunity help? One row per actioned opportunity whose follow-up day
-- (first action day + follow_up_days) has come (<= the as-of day A): the metric the rule
-- named before the action vs on the follow-up day. It improved if it moved the way
-- metric_better says, or if the opportunity was no longer raised then (it resolved).
-- Read by rule_feedback for each rule's realised-impact rate.

-- Before = the opportunity's latest day before the action day (the newest the merchant could
-- have seen), else its first day after it. The follow-up is read on the first evaluated day
-- (some opportunity raised) on or after the follow-up day, normally that day itself; A if
-- none. A follow-up needs a before day earlier than its follow-up day.

with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

actions as (
    select
        opportunity_id,
        opportunity_type,
        first_actioned_on as actioned_on,
        first_actioned_on + {{ var('follow_up_days') | int }} as follow_up_on
    from {{ ref('int_insights__decisions') }}
    where is_actioned
      and first_actioned_on + {{ var('follow_up_days') | int }} <= (select as_of_date from as_of)
),

action_history as (
    select opportunity_id, as_of_date, metric_name, metric_value, metric_better
    from {{ ref('opportunity_history') }}
    where opportunity_id in (select opportunity_id from actions)
      and as_of_date <= (select as_of_date from as_of)
),

baselines as (
    select
        actions.*,
        action_history.as_of_date as baseline_as_of_date,
        action_history.metric_name,
        action_history.metric_better,
        action_history.metric_value as baseline_metric_value
    from actions
    inner join action_history on action_history.opportunity_id = actions.opportunity_id
    qualify row_number() over (
        partition by actions.opportunity_id
        order by action_history.as_of_date >= actions.actioned_on,
                 abs(action_history.as_of_date - actions.actioned_on)
    ) = 1
),

evaluated_days as (
    select distinct as_of_date as day
    from {{ ref('opportunity_history') }}
    where as_of_date >= (select min(follow_up_on) from actions)
      and as_of_date <= (select as_of_date from as_of)
),

follow_up_days as (
    select
        baselines.*,
        coalesce(
            (select min(day) from evaluated_days where evaluated_days.day >= baselines.follow_up_on),
            (select as_of_date from as_of)
        ) as follow_up_as_of_date
    from baselines
),

outcomes as (
    select
        follow_up_days.*,
        action_history.metric_value as follow_up_metric_value,
        action_history.opportunity_id is null as resolved_by_follow_up
    from follow_up_days
    left join action_history
        on action_history.opportunity_id = follow_up_days.opportunity_id
       and action_history.as_of_date = follow_up_days.follow_up_as_of_date
),

final as (
    select
        opportunity_id,
        opportunity_type,
        actioned_on,
        follow_up_on,
        metric_name,
        metric_better,
        baseline_as_of_date,
        baseline_metric_value,
        follow_up_as_of_date,
        follow_up_metric_value,
        resolved_by_follow_up,
        coalesce(
            resolved_by_follow_up
            or (metric_better = 'lower' and follow_up_metric_value < baseline_metric_value)
            or (metric_better = 'higher' and follow_up_metric_value > baseline_metric_value),
            false
        ) as improved
    from outcomes
    where baseline_as_of_date < follow_up_as_of_date
)

select * from final
