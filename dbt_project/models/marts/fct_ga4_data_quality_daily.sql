-- GA4's data-quality flags per report and day: whether any answer that delivered the day's rows
-- was thresholded (small counts withheld), folded rows into "(other)", or sampled. GA sets the
-- flags per request, so a flagged answer flags every day it covered. Null: unknown (the day came
-- from a CSV export, which carries no flags). Opportunities built on a flagged day say so.
with

flags as (
    select 'items' as report, date_day, data_loss_from_other_row, subject_to_thresholding, sampled
    from {{ ref('stg_ga4__items_daily') }}
    union all
    select 'traffic' as report, date_day, data_loss_from_other_row, subject_to_thresholding, sampled
    from {{ ref('stg_ga4__traffic_daily') }}
),

final as (
    select
        report,
        date_day,
        bool_or(data_loss_from_other_row) as has_data_loss_from_other_row,
        bool_or(subject_to_thresholding) as is_subject_to_thresholding,
        bool_or(sampled) as is_sampled,
        coalesce(bool_or(data_loss_from_other_row), false)
            or coalesce(bool_or(subject_to_thresholding), false)
            or coalesce(bool_or(sampled), false) as is_flagged
    from flags
    group by report, date_day
)

select * from final
