{#- Helpers of the stock and product opportunity rules (models/insights/rules/stock/) and of
    the stock / price history they read. -#}

{#- Days of stock history int_shop__variant_stock_history keeps, ending at the as-of day.
    The longest stock window of a rule is 60 days (stockout_lost_sales); 90 leaves room.
    Overridable with the var `stock_history_days`; never shorter than the alerts' backtest
    window plus the day before it (alert_bestseller_stockout looks for the last day in stock). -#}
{% macro stock_history_days() -%}
    {{ return([var('stock_history_days', 90) | int, (var('alert_backtest_days', 60) | int) + 1] | max) }}
{%- endmacro %}

{#- The entity id of a variant in an opportunity: its SKU, or the variant id (as text) when the
    SKU is missing or shared by several variants, so that an id names one variant only.
    A window expression: use it in a select over all of dim_variants, before any filter. -#}
{% macro variant_entity_id(sku='sku', variant_id='variant_id') -%}
    case
        when nullif(trim({{ sku }}), '') is not null
             and count(*) over (partition by {{ sku }}) = 1
            then {{ sku }}
        else cast({{ variant_id }} as varchar)
    end
{%- endmacro %}

{#- How a variant is named in titles and explanations: its entity id, plus its display name
    in parentheses when known. -#}
{% macro variant_label(entity_id='entity_id', display_name='display_name') -%}
    ({{ entity_id }} || coalesce(' (' || {{ display_name }} || ')', ''))
{%- endmacro %}

{#- The days a stock interval [valid_from_date, valid_to_date] (valid_to_date null: open)
    shares with the window of the n_days days ending at as_of_date inclusive. -#}
{% macro interval_days_in_window(as_of_date, n_days, valid_from_date='valid_from_date', valid_to_date='valid_to_date') -%}
    greatest(
        0,
        least(coalesce({{ valid_to_date }}, {{ as_of_date }}), {{ as_of_date }})
        - greatest({{ valid_from_date }}, {{ as_of_date }} - {{ n_days }} + 1)
        + 1
    )
{%- endmacro %}

{#- The n_days days ending at as_of_date inclusive ("the last n days"). -#}
{% macro in_last_days(date_column, as_of_date, n_days) -%}
    ({{ date_column }} > {{ as_of_date }} - {{ n_days }} and {{ date_column }} <= {{ as_of_date }})
{%- endmacro %}

{#- Numbers in explanations: money with two decimals and thousands separators, counts and
    ratios with the given decimals. -#}
{% macro fmt_money(expression) -%}
    format('{:,.2f}', ({{ expression }})::double)
{%- endmacro %}

{% macro fmt_number(expression, decimals=0) -%}
    format('{:,.{{ decimals }}f}', ({{ expression }})::double)
{%- endmacro %}

{#- An impact in money: rounded to cents. -#}
{% macro impact_amount(expression) -%}
    round(({{ expression }})::double, 2)::decimal(18, 2)
{%- endmacro %}
