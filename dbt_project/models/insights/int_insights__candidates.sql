{{ config(materialized='view') }}

-- Every opportunity the rules raise as of the as-of day A: the union of the rule models
-- (rules/*/opp_<type>.sql), which all return the same columns (spec: README.md). A view:
-- opportunity_history reads it once per run and keeps what it needs. `union all by name`
-- so a rule's column order cannot shift values between columns.
{%- set rules = [
    'opp_ads_on_out_of_stock', 'opp_bestseller_low_stock', 'opp_stockout_lost_sales',
    'opp_overstock_slow_mover', 'opp_declining_product', 'opp_high_refund_rate_product',
    'opp_wasted_keyword', 'opp_wasted_search_term', 'opp_campaign_below_target_roas',
    'opp_budget_limited_profitable_campaign', 'opp_high_traffic_low_conversion_product',
    'opp_negative_margin_ads_product', 'opp_price_change_conversion_drop',
] %}

with

final as (
    {%- for rule in rules %}
    select
        as_of_date, opportunity_type, entity_type, entity_id, title, explanation,
        impact_amount, impact_kind, currency, metric_name, metric_value, metric_better,
        base_confidence
    from {{ ref(rule) }}
    {% if not loop.last %}union all by name{% endif %}
    {%- endfor %}
)

select * from final
