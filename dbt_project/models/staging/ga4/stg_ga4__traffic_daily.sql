with source as (
    {{ raw_source('ga4', 'traffic_daily') }}
),

renamed as (
    select
        date as date_day,
        session_source_medium,
        -- GA4 writes "<source> / <medium>"
        nullif(trim(split_part(session_source_medium, ' / ', 1)), '') as session_source,
        nullif(trim(split_part(session_source_medium, ' / ', 2)), '') as session_medium,
        sessions,
        engaged_sessions,
        ecommerce_purchases,
        purchase_revenue,
        data_loss_from_other_row,
        subject_to_thresholding,
        sampled,
        _dlt_load_id
    from source
)

select * from renamed
