-- ads_on_out_of_stock: variants nobody can buy (current stock <= 0, policy deny, stock
-- tracked) that product ads still spend on. Evaluated as of int_insights__as_of; reads only
-- the last max(ads_oos_spend_days, 7) days of product ad spend.
-- Impact: the 7-day spend per 30 days (monthly), what pausing the ads saves.
{%- set spend_days = var('ads_oos_spend_days') | int %}
{%- set window_days = [spend_days, 7] | max %}

with

as_of as (
    select as_of_date from {{ ref('int_insights__as_of') }}
),

variants as (
    select
        variant_id,
        {{ variant_entity_id() }} as entity_id,
        display_name,
        currency,
        inventory_policy,
        is_tracked,
        total_available_quantity
    from {{ ref('dim_variants') }}
),

-- Untracked stock (is_tracked false) never stops a sale, whatever the quantity says.
out_of_stock_variants as (
    select *
    from variants
    where total_available_quantity <= 0
      and inventory_policy = 'deny'
      and is_tracked is distinct from false
),

product_spend as (
    select
        ads.variant_id,
        coalesce(sum(ads.cost) filter (
            where ads.date_day > as_of.as_of_date - {{ spend_days }}
        ), 0) as spend_recent,
        coalesce(sum(ads.cost) filter (
            where ads.date_day > as_of.as_of_date - 7
        ), 0) as spend_7d
    from {{ ref('fct_ads_product_daily') }} as ads
    cross join as_of
    where ads.variant_id is not null
      and {{ in_last_days('ads.date_day', 'as_of.as_of_date', window_days) }}
    group by ads.variant_id
),

advertised_out_of_stock as (
    select
        out_of_stock_variants.*,
        product_spend.spend_recent,
        product_spend.spend_7d,
        {{ impact_amount('product_spend.spend_7d / 7 * 30') }} as impact_amount
    from out_of_stock_variants
    inner join product_spend
        on out_of_stock_variants.variant_id = product_spend.variant_id
    where product_spend.spend_recent > 0
),

final as (
    select
        as_of.as_of_date,
        'ads_on_out_of_stock' as opportunity_type,
        'variant' as entity_type,
        entity_id,
        'Pause ads for ' || entity_id || ': out of stock' as title,
        {{ variant_label() }}
            || ' is out of stock (' || {{ fmt_number('total_available_quantity') }}
            || ' units, policy deny) but ads spent ' || {{ fmt_money('spend_recent') }}
            || ' ' || coalesce(currency, '') || ' on it in the last {{ spend_days }} days ('
            || {{ fmt_money('spend_7d') }} || ' in the last 7).' as explanation,
        impact_amount,
        'monthly' as impact_kind,
        currency,
        'ad_spend_7d' as metric_name,
        spend_7d::double as metric_value,
        'lower' as metric_better,
        0.95::double as base_confidence
    from advertised_out_of_stock
    cross join as_of
    where impact_amount > 0
)

select * from final
