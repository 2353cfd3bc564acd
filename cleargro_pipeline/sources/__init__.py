"""dlt sources, one per system (shop, GA4, Google Ads): plain dlt code, no Dagster import."""
