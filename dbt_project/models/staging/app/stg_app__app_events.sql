with source as (
    {{ raw_source('app', 'app_events') }}
),

renamed as (
    select
        ts as event_at,
        cast(timezone('UTC', ts) as date) as event_date,
        user_pseudonym,
        event as event_name,
        nullif(opportunity_id, '') as opportunity_id,
        _dlt_load_id
    from source
)

select * from renamed
