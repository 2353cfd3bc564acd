{#- The columns are the model's primary key: never null and unique together. One query and one
    node per model where unique, unique_combination_of_columns and a not_null per key column
    took several (each test is a dbt node, and a node's fixed cost dwarfs its query here). A
    null key value forms a group of its own, so one grouping finds both kinds of failure. -#}
{% test primary_key(model, columns) %}
    {%- set key = columns | join(', ') %}
    select {{ key }}, count(*) as n_records
    from {{ model }}
    group by {{ key }}
    having count(*) > 1
    {%- for column in columns %} or {{ column }} is null{% endfor %}
{% endtest %}
