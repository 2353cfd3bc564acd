"""Read-only questions asked of a tenant warehouse (summaries, analyst SQL)."""

from __future__ import annotations

import hashlib

import polars as pl

from cleargro_pipeline import warehouse
from cleargro_pipeline.security import audit


def table_row_counts(tenant: str) -> dict[str, int]:
    """Rows per table in the raw and mart layers (views in staging are not counted)."""
    with warehouse.open_warehouse(tenant, purpose="summary", read_only=True) as conn:
        tables = conn.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = ? "
            "and not starts_with(table_name, '_dlt') and not ends_with(schema_name, '_staging') "
            "order by 1, 2", [warehouse.ALIAS]).fetchall()
        return {f"{s}.{t}": conn.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0]
                for s, t in tables}


def analyst_query(tenant: str, sql: str) -> pl.DataFrame:
    """Run one read-only query; the audit log records who, when and a hash of the text
    (the text itself may quote customer values)."""
    digest = hashlib.sha256(sql.encode()).hexdigest()
    audit.append("sql_query", tenant=tenant, purpose="query", sql_sha256=digest)
    with warehouse.open_warehouse(tenant, purpose="query", read_only=True) as conn:
        return conn.sql(sql).pl()


def top_opportunities(tenant: str, limit: int = 5) -> list[dict]:
    """The open opportunities first in line (priority 1 first); [] before insights exist."""
    with warehouse.open_warehouse(tenant, purpose="summary", read_only=True) as conn:
        exists = conn.execute("select count(*) from duckdb_tables() where database_name = ? and "
                              "schema_name = 'insights' and table_name = 'opportunities'",
                              [warehouse.ALIAS]).fetchone()[0]
        if not exists:
            return []
        return conn.execute(
            "select priority, opportunity_type, entity_id, impact_amount::double as impact_amount, "
            "impact_kind, currency, explanation, as_of_date from insights.opportunities "
            "where priority is not null order by priority limit ?", [limit]).pl().to_dicts()


def ads_product_match(tenant: str, days: int = 30, *,
                      lock_timeout: float | None = None) -> dict | None:
    """How much of the last `days` days' Google Ads product spend matched a Shopify variant
    (by offer id or SKU; marts.fct_ads_product_daily). None before there is any."""
    with warehouse.open_warehouse(tenant, purpose="summary", read_only=True,
                                  lock_timeout=lock_timeout) as conn:
        exists = conn.execute("select count(*) from duckdb_tables() where database_name = ? and "
                              "schema_name = 'marts' and table_name = 'fct_ads_product_daily'",
                              [warehouse.ALIAS]).fetchone()[0]
        if not exists:
            return None
        row = conn.execute(
            "select count(*), sum(cost), sum(cost) filter (where is_matched_variant), "
            "count(distinct product_item_id) filter (where not is_matched_variant), min(date_day), "
            "max(date_day) from marts.fct_ads_product_daily where date_day > "
            "(select max(date_day) from marts.fct_ads_product_daily) - ?::integer", [days]).fetchone()
    rows, spend, matched, unmatched_offers, first, last = row
    if not rows:
        return None
    return {"days": f"{first} to {last}",
            "matched_spend_share": round(float(matched or 0) / float(spend), 4) if spend else None,
            "unmatched_spend": round(float(spend or 0) - float(matched or 0), 2),
            "unmatched_offers": unmatched_offers}
