-- How merchants respond to each rule, one row per opportunity_type ever raised: how many of
-- its opportunities were actioned or dismissed, how many actions were followed up and how
-- many of those improved, the Laplace-smoothed rates ((k + 1) / (n + 2): 0.5 without
-- feedback) and the factor they give the rule's confidence:
-- (0.5 + action_rate) x (0.5 + realised_rate), 1 without feedback, between 0.25 and 2.25.

-- An opportunity counts once: actioned if it was ever actioned, else dismissed if it was.

with

rule_types as (
    select distinct opportunity_type from {{ ref('int_insights__detections') }}
),

decision_counts as (
    select
        opportunity_type,
        count(*) filter (where is_actioned) as actioned_count,
        count(*) filter (where is_dismissed and not is_actioned) as dismissed_count
    from {{ ref('int_insights__decisions') }}
    group by opportunity_type
),

follow_up_counts as (
    select
        opportunity_type,
        count(*) as followed_up_count,
        count(*) filter (where improved) as improved_count
    from {{ ref('int_insights__follow_ups') }}
    group by opportunity_type
),

counts as (
    select
        rule_types.opportunity_type,
        coalesce(decision_counts.actioned_count, 0) as actioned_count,
        coalesce(decision_counts.dismissed_count, 0) as dismissed_count,
        coalesce(follow_up_counts.followed_up_count, 0) as followed_up_count,
        coalesce(follow_up_counts.improved_count, 0) as improved_count
    from rule_types
    left join decision_counts on decision_counts.opportunity_type = rule_types.opportunity_type
    left join follow_up_counts on follow_up_counts.opportunity_type = rule_types.opportunity_type
),

rates as (
    select
        *,
        (actioned_count + 1)::double / (actioned_count + dismissed_count + 2) as action_rate,
        (improved_count + 1)::double / (followed_up_count + 2) as realised_rate
    from counts
),

final as (
    select
        *,
        (0.5 + action_rate) * (0.5 + realised_rate) as confidence_factor
    from rates
)

select * from final
