"""Platform alerts, read from the Dagster instance: stale sources, failed runs, API versions,
spent quotas.

They name the source, job, step and error class, never a customer value: Dagster's error
messages may quote data, so only the class is taken from them.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

import dagster as dg

from cleargro_pipeline import tenants
from cleargro_pipeline.alerts.store import Detection
from cleargro_pipeline.controls import deletion
from cleargro_pipeline.sources import contract

STALE_AFTER = timedelta(hours=36)
CRITICAL_STALE_AFTER = timedelta(hours=72)
WATCHED_JOBS = ("tenant_refresh", "weekly_reports", "monthly_reports")
CREDENTIALS_ERROR = "CredentialsRejected"
# A load notice (materialization metadata of the sync) a source sets when its provider's daily
# quota ended the sync early; its value names the quota.
QUOTA_NOTICE = "quota_exhausted"


def dagster_url() -> str:
    return os.environ.get("CLEARGRO_DAGSTER_URL", "http://127.0.0.1:3000").rstrip("/")


def stale_sources(instance: dg.DagsterInstance, tenant: str, now: datetime) -> list[Detection]:
    """`data_stale` for each synced source whose last successful sync is over 36 h old.

    A sync counts when Dagster recorded its raw assets for the tenant's partition, with or
    without new rows (a quiet source is not a stale one). A source never synced counts from
    the day the tenant was registered.
    """
    if deletion.is_deleting(tenant):
        return []  # its syncs are stopped on purpose
    found = []
    config = tenants.get(tenant)
    registered = datetime.fromisoformat(config.created_at)
    rejected = tenants.rejected_sources(config)  # credentials_invalid speaks for those
    for system in (s for s in tenants.synced_sources(config) if s not in rejected):
        last = _last_sync(instance, tenant, system) or registered
        age = now - last
        if age <= STALE_AFTER:
            continue
        hours = age.total_seconds() / 3600
        found.append(Detection(
            alert_type="data_stale",
            severity="critical" if age > CRITICAL_STALE_AFTER else "warning",
            entity_type="source", entity_id=system, metric="hours_since_last_sync",
            observed=round(hours, 1), expected=STALE_AFTER.total_seconds() / 3600,
            episode_start=(last + STALE_AFTER).date(), detected_on=now.date(),
            message=f"{system} has not synced for {hours:.0f} h (alert after "
                    f"{STALE_AFTER.total_seconds() / 3600:.0f} h); last sync {last:%Y-%m-%d %H:%M} UTC.",
            link=f"cleargro run --tenant {tenant}"))
    return found


def rejected_credentials(tenant: str) -> list[Detection]:
    """`credentials_invalid` for each source that refused its stored credentials (or whose app
    was uninstalled), as long as it is not reconnected: its syncs are stopped meanwhile."""
    found = []
    for system, since in tenants.rejected_sources(tenants.get(tenant)).items():
        day = datetime.fromisoformat(since).date()
        found.append(Detection(
            alert_type="credentials_invalid", severity="critical", entity_type="source",
            entity_id=system, metric="sync_status", observed=None, expected=None,
            episode_start=day, detected_on=day, link="cleargro connect --help",
            message=f"{system} refused the stored credentials on {since}: its sync is stopped "
                    "until the merchant reconnects it."))
    return found


def api_version_drift(instance: dg.DagsterInstance, tenant: str) -> list[Detection]:
    """`source_api_version` while a source's latest sync was served another API version than
    the connector pins (Shopify falls forward from a version it no longer supports): the load
    went ahead, and the connector's pin must move before fields change under it."""
    found = []
    for system in tenants.synced_sources(tenants.get(tenant)):
        metadata, synced = _latest_sync(instance, tenant, system)
        served, pinned = metadata.get("api_version_served"), metadata.get("api_version")
        if served is None or pinned is None or served.value == pinned.value:
            continue
        found.append(Detection(
            alert_type="source_api_version", severity="warning", entity_type="source",
            entity_id=system, metric="api_version", observed=None, expected=None,
            episode_start=synced, detected_on=synced,
            message=f"{system} answered with API version {served.value} instead of the pinned "
                    f"{pinned.value} (the provider fell forward): the sync went ahead; move "
                    "the connector's pinned version."))
    return found


def quota_exhausted(instance: dg.DagsterInstance, tenant: str) -> list[Detection]:
    """`source_quota` while a source's latest sync stopped early because the provider's daily
    quota was spent (GA4 tokens per day, Google Ads operations per day): what was read before
    is loaded, the rest waits for the next day's sync (the cursor did not move past it)."""
    found = []
    for system in tenants.synced_sources(tenants.get(tenant)):
        metadata, synced = _latest_sync(instance, tenant, system)
        quota = metadata.get(QUOTA_NOTICE)
        if quota is None:
            continue
        found.append(Detection(
            alert_type="source_quota", severity="warning", entity_type="source",
            entity_id=system, metric="quota", observed=None, expected=None,
            episode_start=synced, detected_on=synced,
            message=f"{system} stopped syncing on {synced}: the provider's daily quota is spent "
                    f"({quota.value}). What was read is loaded; the next sync goes on from there."))
    return found


def _latest_sync(instance: dg.DagsterInstance, tenant: str,
                 system: str) -> tuple[Mapping[str, Any], date | None]:
    """The notices (metadata) of the source's latest sync for the tenant, and its day."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=sync_marker(system), asset_partitions=[tenant]),
        limit=1).records
    if not records:
        return {}, None
    day = datetime.fromtimestamp(records[0].timestamp, timezone.utc).date()
    return records[0].asset_materialization.metadata, day


def sync_marker(system: str) -> dg.AssetKey:
    """The raw asset whose materialization for a tenant marks a sync of `system`: a load records
    every raw table of its system, with or without new rows, so its first contract table serves.
    Raw assets are keyed by warehouse schema and table (the asset-graph snapshot test guards it)."""
    table = contract.tables_of(system)[0]
    return dg.AssetKey([table.dataset, table.name])


def _last_sync(instance: dg.DagsterInstance, tenant: str, system: str) -> datetime | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=sync_marker(system), asset_partitions=[tenant]),
        limit=1).records
    return (datetime.fromtimestamp(records[0].timestamp, timezone.utc) if records else None)


def failed_runs(instance: dg.DagsterInstance, tenant: str) -> list[Detection]:
    """`pipeline_failed` (or `credentials_invalid`) while a watched job's latest run for the
    tenant failed; a later successful run clears it."""
    found = []
    for job in WATCHED_JOBS:
        runs = instance.get_runs(dg.RunsFilter(
            job_name=job, tags=tenants.run_tags(tenant),
            statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]), limit=1)
        if runs and runs[0].status == dg.DagsterRunStatus.FAILURE:
            found.extend(_failure(instance, tenant, job, runs[0]))
    return found


def _failure(instance: dg.DagsterInstance, tenant: str, job: str, run: Any) -> list[Detection]:
    ended = datetime.fromtimestamp(
        instance.get_run_record_by_id(run.run_id).end_time or 0, timezone.utc)
    steps = [(event.step_key, event.dagster_event.step_failure_data.error)
             for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]
    step, error = steps[0] if steps else ("run start", None)
    cls = _root_class(error) if error else "RunFailure"
    link = f"{dagster_url()}/runs/{run.run_id}"
    if cls == CREDENTIALS_ERROR:
        return [Detection(
            alert_type="credentials_invalid", severity="critical", entity_type="source",
            entity_id=system, metric="sync_status", observed=None, expected=None,
            episode_start=ended.date(), detected_on=ended.date(), link=link,
            message=f"{system} rejected the stored credentials in run {run.run_id[:8]}: "
                    f"reconnect the integration to resume syncing.")
            for system in _unloaded_systems(instance, run)]
    return [Detection(
        alert_type="pipeline_failed", severity="critical", entity_type="job", entity_id=job,
        metric="failed_step", observed=None, expected=None, episode_start=ended.date(),
        detected_on=ended.date(), link=link,
        message=f"Run {run.run_id[:8]} of {job} failed at step {step} ({cls}).")]


def _unloaded_systems(instance: dg.DagsterInstance, run: Any) -> list[str]:
    """Systems whose raw tables the run was to load and did not (one loader step loads them
    all, recording each system that loaded before it fails for the others)."""
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=100_000).records
    loaded = {r.event_log_entry.dagster_event.asset_key for r in records}
    return sorted({key.path[0].removeprefix("raw_") for key in run.asset_selection or ()
                   if key.path[0].startswith("raw_") and key not in loaded})


def _root_class(error: Any) -> str:
    """The class of our own error under Dagster's wrappers (e.g. DagsterExecutionStepExecutionError)."""
    while error is not None and error.cls_name and error.cls_name.startswith("Dagster") \
            and error.cause is not None:
        error = error.cause
    return error.cls_name or "Error"


def overdue_deletion(tenant: str, now: datetime) -> list[Detection]:
    """`deletion_overdue` while the tenant's deletion request is not completed 25 days after it
    was made (the policy promises 30)."""
    found = []
    for late in deletion.overdue(now):
        if late.tenant != tenant:
            continue
        days = (now - late.requested_at).total_seconds() / 86400
        found.append(Detection(
            alert_type="deletion_overdue", severity="critical", entity_type="deletion_request",
            entity_id=late.request_id, metric="days_since_request", observed=round(days, 1),
            expected=float(deletion.OVERDUE_DAYS), episode_start=late.due_at().date(),
            detected_on=now.date(), link="cleargro delete --tenant {0} --now".format(tenant),
            message=f"The deletion requested on {late.requested_at:%Y-%m-%d} is not complete after "
                    f"{days:.0f} days (alert after {deletion.OVERDUE_DAYS}; the policy promises 30)."))
    return found
