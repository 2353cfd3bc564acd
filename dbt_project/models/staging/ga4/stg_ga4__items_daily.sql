with source as (
    {{ raw_source('ga4', 'items_daily') }}
),

renamed as (
    select
        date as date_day,
        item_id,
        item_name,
        items_viewed,
        items_added_to_cart,
        items_purchased,
        item_revenue,
        data_loss_from_other_row,
        subject_to_thresholding,
        sampled,
        _dlt_load_id
    from source
)

select * from renamed
