"""The per-tenant refresh job and its daily schedule."""

from typing import Iterator

import dagster as dg

from cleargro_pipeline import ingest, tenants
from cleargro_pipeline.defs.ingestion import RAW_ASSETS
from cleargro_pipeline.defs.transformation import dbt_models
from cleargro_pipeline.orchestration.partitions import sync_tenant_partitions

tenant_refresh = dg.define_asset_job(
    "tenant_refresh", selection=dg.AssetSelection.assets(*RAW_ASSETS, dbt_models),
    description="Load every configured source of one tenant, then build its dbt models.")


def tenant_selection(tenant: str) -> list[dg.AssetKey]:
    """Raw tables of the systems the tenant syncs, plus every model."""
    configured = set(tenants.synced_sources(tenants.get(tenant)))
    keys = [key for system, assets in zip(ingest.SYSTEMS, RAW_ASSETS) if system in configured
            for key in assets.keys]
    return keys + list(dbt_models.keys)


@dg.schedule(job=tenant_refresh, cron_schedule="0 4 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_tenant_refresh(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for tenant in sync_tenant_partitions(context.instance):
        yield dg.RunRequest(run_key=f"{tenant}:{day}", partition_key=tenant,
                            asset_selection=tenant_selection(tenant), tags=tenants.run_tags(tenant))
