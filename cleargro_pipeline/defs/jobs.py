"""The per-tenant refresh job and its daily schedule."""

from typing import Iterator

import dagster as dg

from cleargro_pipeline import ingest, tenants
from cleargro_pipeline.defs.ingestion import load_raw, raw_asset_keys
from cleargro_pipeline.defs.transformation import dbt_models
from cleargro_pipeline.orchestration.partitions import sync_tenant_partitions

# Two steps, both in the run's own process: the loader and dbt start their supervised
# children themselves, so a process per step (the multiprocess executor) only adds start-up.
tenant_refresh = dg.define_asset_job(
    "tenant_refresh", selection=dg.AssetSelection.assets(load_raw, dbt_models),
    executor_def=dg.in_process_executor,
    description="Load every configured source of one tenant, then build its dbt models.")


def tenant_selection(tenant: str) -> list[dg.AssetKey]:
    """Raw tables of the systems the tenant syncs, plus every model."""
    configured = set(tenants.synced_sources(tenants.get(tenant)))
    keys = [key for system in ingest.SYSTEMS if system in configured
            for key in raw_asset_keys(system)]
    return keys + list(dbt_models.keys)


@dg.schedule(job=tenant_refresh, cron_schedule="0 4 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_tenant_refresh(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for tenant in sync_tenant_partitions(context.instance):
        yield dg.RunRequest(run_key=f"{tenant}:{day}", partition_key=tenant,
                            asset_selection=tenant_selection(tenant), tags=tenants.run_tags(tenant))
