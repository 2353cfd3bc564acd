-- Every business alert the rules detect on each day of the backtest window (the
-- alert_backtest_days days ending at the as-of day A): the union of the rule models, one row
-- per (alert_type, entity_id, for_date). The live system reads the rows with for_date = A;
-- the eval counts episodes over the whole window.
-- Episodes: consecutive detection days of one type and entity form one episode, which starts
-- on its first day (episode_start). A bestseller stock-out brings its own start, the day
-- stock reached zero, so one stock-out is one episode however long it lasts. An episode
-- longer than the window starts, as far as this table knows, on the window's first day.
-- The lifecycle keys an alert on (tenant, alert_type, entity_id, episode_start)
-- (cleargro_pipeline/alerts/model.py alert_id).
with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

detections as (
    {%- for rule in ['alert_metric_drops', 'alert_ad_spend_spike', 'alert_roas_drop', 'alert_bestseller_stockout'] %}
    select
        alert_type, severity, entity_type, entity_id, metric, observed, expected, for_date,
        episode_start, message
    from {{ ref(rule) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

islands as (
    select
        *,
        -- constant over a run of consecutive days
        for_date - cast(row_number() over (partition by alert_type, entity_id order by for_date) as integer)
            as island
    from detections
),

final as (
    select
        as_of.as_of_date,
        islands.alert_type,
        islands.severity,
        islands.entity_type,
        islands.entity_id,
        islands.metric,
        islands.observed,
        islands.expected,
        islands.for_date,
        coalesce(
            islands.episode_start,
            min(islands.for_date) over (partition by islands.alert_type, islands.entity_id, islands.island)
        ) as episode_start,
        islands.message
    from islands
    cross join as_of
)

select * from final
