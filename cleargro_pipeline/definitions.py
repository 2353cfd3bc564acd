"""Dagster code location (loaded by workspace.yaml)."""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from cleargro_pipeline.defs.alerting import (
    alert_dispatch,
    alerts_after_refresh,
    alerts_on_run_failure,
)
from cleargro_pipeline.defs.data_controls import (
    daily_retention,
    deletion_requests,
    nightly_backups,
    privacy_requests_sensor,
    purge_expired_copies,
    purge_expired_copies_schedule,
    shopper_privacy_requests,
    tenant_backup,
    tenant_backups,
    tenant_deletion,
    tenant_retention,
)
from cleargro_pipeline.defs.ingestion import RAW_ASSETS
from cleargro_pipeline.defs.jobs import daily_tenant_refresh, tenant_refresh
from cleargro_pipeline.defs.reporting import (
    monthly_report,
    monthly_report_schedule,
    monthly_reports,
    weekly_report,
    weekly_report_schedule,
    weekly_reports,
)
from cleargro_pipeline.defs.transformation import dbt_models, dbt_project

defs = dg.Definitions(
    assets=[*RAW_ASSETS, dbt_models, weekly_report, monthly_report, tenant_backup],
    jobs=[tenant_refresh, weekly_reports, monthly_reports, tenant_backups, purge_expired_copies,
          tenant_deletion, shopper_privacy_requests, tenant_retention],
    schedules=[daily_tenant_refresh, weekly_report_schedule, monthly_report_schedule,
               nightly_backups, purge_expired_copies_schedule, daily_retention],
    sensors=[alerts_after_refresh, alerts_on_run_failure, alert_dispatch, deletion_requests,
             privacy_requests_sensor],
    # dbt from this interpreter's environment, whatever PATH says.
    resources={"dbt": DbtCliResource(project_dir=dbt_project,
                                     dbt_executable=str(Path(sys.executable).with_name("dbt")))},
)
