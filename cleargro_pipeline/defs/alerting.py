"""Sensors that evaluate and deliver alerts with the same `alerts.service.run` as the CLI: after
every tenant refresh (business alerts change with the new day), when a watched run fails
(`pipeline_failed` / `credentials_invalid` at once), and every few minutes for every tenant
(retries with backoff, daily digests, stale sources). A tenant whose warehouse is busy (a run
holds its writer lock) is skipped until the next tick; its pending work waits in its warehouse."""

from __future__ import annotations

import dagster as dg

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.alerts import service
from cleargro_pipeline.defs.jobs import tenant_refresh
from cleargro_pipeline.defs.reporting import monthly_reports, weekly_reports

BUSY_WAIT_S = 5.0


def _run_for(context, tenant: str | None) -> str:
    if not tenant or not tenants.exists(tenant):
        return f"no registered tenant on the run ({tenant!r})"
    try:
        outcome = service.run(tenant, instance=context.instance, lock_timeout=BUSY_WAIT_S)
    except warehouse.WarehouseError as error:  # busy or unreadable: retried next tick
        context.log.warning(f"alerts of tenant '{tenant}' not evaluated: {error}")
        return f"{tenant}: skipped"
    sent = outcome.dispatch
    return (f"{tenant}: {len(outcome.raised)} raised, {len(outcome.resolved)} resolved, "
            f"{len(sent.sent)} sent, {len(sent.failed)} failed, {sent.pending} pending")


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[tenant_refresh],
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="Evaluate and send a tenant's alerts after its refresh.")
def alerts_after_refresh(context: dg.RunStatusSensorContext) -> dg.SkipReason:
    return dg.SkipReason(_run_for(context, context.dagster_run.tags.get(tenants.RUN_TAG)))


@dg.run_failure_sensor(monitored_jobs=[tenant_refresh, weekly_reports, monthly_reports],
                       default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Raise pipeline_failed / credentials_invalid when a run fails.")
def alerts_on_run_failure(context: dg.RunFailureSensorContext) -> dg.SkipReason:
    return dg.SkipReason(_run_for(context, context.dagster_run.tags.get(tenants.RUN_TAG)))


@dg.sensor(minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Retry undelivered alerts, send daily digests, watch for stale sources.")
def alert_dispatch(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    return dg.SkipReason("; ".join(_run_for(context, t.name) for t in tenants.all_tenants())
                         or "no tenants")
