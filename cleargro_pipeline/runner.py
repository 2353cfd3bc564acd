"""Materialize a tenant through the Dagster instance (what `cleargro run` and `demo` call): runs
execute in this process but are recorded in DAGSTER_HOME's instance, so they appear in the
Dagster UI with their events, like scheduled runs."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from cleargro_pipeline import tenants
from cleargro_pipeline.definitions import loaded_defs
from cleargro_pipeline.defs.jobs import tenant_selection
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.orchestration.partitions import dagster_instance, month_key, week_key


class RunFailed(CleargroError):
    pass


@dataclass
class RunSummary:
    tenant: str
    run_id: str
    step_seconds: dict[str, float] = field(default_factory=dict)


def materialize_tenant(tenant: str) -> RunSummary:
    instance = dagster_instance()
    job = loaded_defs().resolve_job_def("tenant_refresh")
    result = job.execute_in_process(
        instance=instance, partition_key=tenant, asset_selection=tenant_selection(tenant),
        tags=tenants.run_tags(tenant), raise_on_error=False,
        # The console shows progress and problems; every event is in the run's log anyway.
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}})
    if not result.success:
        raise RunFailed(f"tenant '{tenant}': run {result.run_id} failed at "
                        f"{_failed_steps(result)}; see `cleargro` output above or the run in the "
                        "Dagster UI (`make dev`)")
    return RunSummary(tenant, result.run_id, _step_seconds(instance, result.run_id))


def materialize_report(tenant: str, period: str) -> RunSummary:
    """Render and store one report (`2026-W47` or `2026-11`) as a run of its report job."""
    instance = dagster_instance()
    weekly = "-W" in period
    job = loaded_defs().resolve_job_def("weekly_reports" if weekly else "monthly_reports")
    key = dg.MultiPartitionKey({"tenant": tenant, **(
        {"week": week_key(period)} if weekly else {"month": month_key(period)})})
    result = job.execute_in_process(
        instance=instance, partition_key=key, tags=tenants.run_tags(tenant), raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    if not result.success:
        raise RunFailed(f"tenant '{tenant}': report {period} failed in run {result.run_id}; "
                        "see the run in the Dagster UI (`make dev`)")
    return RunSummary(tenant, result.run_id, _step_seconds(instance, result.run_id))


def _failed_steps(result: dg.ExecuteInProcessResult) -> str:
    failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return ", ".join(failed) or "run start"


def _step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    return {stats.step_key: round(stats.end_time - stats.start_time, 2)
            for stats in instance.get_run_step_stats(run_id)
            if stats.end_time and stats.start_time}


def tenant_refresh_job() -> dg.JobDefinition:
    """The job, rebuilt by name in other processes (Dagster's `reconstructable`), for
    runs with the multiprocess executor outside a workspace."""
    return loaded_defs().resolve_job_def("tenant_refresh")
