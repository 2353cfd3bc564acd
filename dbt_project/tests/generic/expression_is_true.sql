{#- Every row satisfies a SQL expression (like dbt_utils' test of the same name). -#}
{% test expression_is_true(model, expression) %}
    select * from {{ model }} where not ({{ expression }})
{% endtest %}
