"""Customer data controls as Dagster definitions: nightly backups and their 90-day purge,
export expiry, tenant deletion, shopper privacy requests and retention. The work itself lives
in `controls.backups`, `export`, `deletion` and `retention` and in `privacy.shoppers`; these
definitions only schedule it, audit each step's start and finish, and record ids, sizes and
hashes (never data) as metadata."""

import hashlib
from contextlib import contextmanager
from typing import Iterator

import dagster as dg

from cleargro_pipeline import tenants
from cleargro_pipeline.controls import backups, deletion, export, retention
from cleargro_pipeline.orchestration.partitions import sync_tenant_partitions, tenant_partitions
from cleargro_pipeline.orchestration.translator import OPPORTUNITIES_KEY
from cleargro_pipeline.privacy import shoppers
from cleargro_pipeline.security import audit


@contextmanager
def _audited(context: dg.OpExecutionContext | dg.AssetExecutionContext,
             tenant: str | None = None) -> Iterator[None]:
    """A data-control step in the audit log: `job_started`, then `job_finished` with its
    outcome (the error class on failure, never its message)."""
    step = {"job": context.job_name, "step": context.op_def.name, "run_id": context.run_id}
    audit.append("job_started", tenant=tenant, **step)
    try:
        yield
    except BaseException as error:
        audit.append("job_finished", tenant=tenant, outcome="failed",
                     error=type(error).__name__, **step)
        raise
    audit.append("job_finished", tenant=tenant, outcome="succeeded", **step)


@dg.asset(partitions_def=tenant_partitions, deps=[OPPORTUNITIES_KEY], group_name="data_controls",
          description="A backup of the tenant's warehouse after a checkpoint: a byte copy, still "
                      "encrypted with the tenant's data key (data/backups/<tenant>/).")
def tenant_backup(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with _audited(context, context.partition_key):
        backup = backups.take(context.partition_key, reason="scheduled")
    return dg.MaterializeResult(metadata={
        "backup_id": backup.id, "bytes": dg.MetadataValue.int(backup.size),
        "sha256": backup.sha256, "tables": dg.MetadataValue.int(len(backup.tables))})


tenant_backups = dg.define_asset_job("tenant_backups", selection=[tenant_backup],
                                     description="Back up one tenant's warehouse.")


@dg.schedule(job=tenant_backups, cron_schedule="0 5 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def nightly_backups(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
    """After the 04:00 refresh: one backup per tenant."""
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for tenant in sync_tenant_partitions(context.instance):
        yield dg.RunRequest(run_key=f"{tenant}:{day}", partition_key=tenant,
                            tags=tenants.run_tags(tenant))


@dg.op(description="Delete backups older than 90 days (every tenant).")
def purge_old_backups(context: dg.OpExecutionContext) -> None:
    with _audited(context):
        purged = backups.purge()
    context.log.info(f"purged {len(purged)} backup(s) older than {backups.RETENTION.days} days")


@dg.op(description="Delete encrypted data exports past their 7-day expiry (every tenant).")
def purge_expired_exports(context: dg.OpExecutionContext) -> None:
    with _audited(context):
        expired = export.purge_expired()
    context.log.info(f"expired {len(expired)} export(s) older than {export.RETENTION.days} days")


@dg.op(description="Delete uncollected shopper data-request archives after 30 days.")
def purge_shopper_exports(context: dg.OpExecutionContext) -> None:
    with _audited(context):
        purged = shoppers.purge_expired_exports()
    context.log.info(f"purged {len(purged)} shopper archive(s)")


@dg.job(description="Retention of copies: backups past 90 days, data exports past 7 days, "
                    "shopper data-request archives past 30 days.")
def purge_expired_copies() -> None:
    purge_old_backups()
    purge_expired_exports()
    purge_shopper_exports()


purge_expired_copies_schedule = dg.ScheduleDefinition(
    job=purge_expired_copies, cron_schedule="30 5 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING)


DELETION_REQUEST_TAG = "cleargro/deletion_request"


@dg.op(config_schema={"tenant": str},
       description="Delete a tenant: stop its runs, destroy its keys, remove every copy of its "
                   "data and its Dagster runs, and sign a deletion certificate.")
def delete_tenant(context: dg.OpExecutionContext) -> None:
    with _audited(context, context.op_config["tenant"]):
        certificate = deletion.run(context.op_config["tenant"], instance=context.instance,
                                   current_run_id=context.run_id)
    context.log.info(f"deletion certificate {certificate.name}")


# Not tagged with the tenant: it must not queue behind the tenant's own runs (it stops them).
@dg.job(description="Delete one tenant, with a signed certificate (data/certificates/).")
def tenant_deletion() -> None:
    delete_tenant()


@dg.sensor(job=tenant_deletion, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Start the deletion job for each pending deletion request.")
def deletion_requests(context: dg.SensorEvaluationContext) -> Iterator[dg.RunRequest]:
    in_flight = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
                 dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    for pending in deletion.pending():
        if context.instance.get_run_ids(dg.RunsFilter(
                tags={DELETION_REQUEST_TAG: pending.request_id}, statuses=in_flight)):
            continue
        # No run_key: a failed deletion is requested again on a later tick.
        yield dg.RunRequest(run_config={"ops": {"delete_tenant": {"config": {"tenant": pending.tenant}}}},
                            tags={DELETION_REQUEST_TAG: pending.request_id})


@dg.op(config_schema={"tenant": str},
       description="Carry out the tenant's pending shopper erasures and data requests.")
def process_privacy_requests(context: dg.OpExecutionContext) -> None:
    with _audited(context, context.op_config["tenant"]):
        done = shoppers.process_pending(context.op_config["tenant"])
    context.log.info(f"privacy requests done: {', '.join(done) or 'none'}")


@dg.job(description="Shopper erasures (customers/redact) and data requests for one tenant.")
def shopper_privacy_requests() -> None:
    process_privacy_requests()


@dg.sensor(job=shopper_privacy_requests, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Start a run for each tenant with pending shopper privacy requests.")
def privacy_requests_sensor(context: dg.SensorEvaluationContext) -> Iterator[dg.RunRequest]:
    by_tenant: dict[str, list[str]] = {}
    for request in shoppers.due_requests():
        by_tenant.setdefault(request.tenant, []).append(
            f"{request.request_id}:{request.status}:{request.updated_at}")
    for tenant, states in by_tenant.items():
        digest = hashlib.sha256("|".join(sorted(states)).encode()).hexdigest()[:16]
        yield dg.RunRequest(run_key=f"{tenant}:{digest}", tags=tenants.run_tags(tenant),
                            run_config={"ops": {"process_privacy_requests": {"config": {"tenant": tenant}}}})


@dg.op(config_schema={"tenant": str},
       description="Delete the tenant's raw rows older than its retention window, rebuild the "
                   "models that read them (full refresh) and rewrite the warehouse file.")
def apply_retention(context: dg.OpExecutionContext) -> None:
    with _audited(context, context.op_config["tenant"]):
        r = retention.apply(context.op_config["tenant"])
    context.log.info(f"retention cut {r.cutoff.date() if r.cutoff else 'none'}: "
                     f"{sum(r.deleted.values())} raw rows deleted, {sum(r.clamped.values())} "
                     f"history rows moved to the cut, rebuilt={r.rebuilt}, {r.seconds} s")


@dg.job(description="Cut one tenant's raw history to its retention window.")
def tenant_retention() -> None:
    apply_retention()


@dg.schedule(job=tenant_retention, cron_schedule="30 4 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_retention(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
    """After the 04:00 refresh, before the 05:00 backups; queued behind the tenant's own runs."""
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    due = set(retention.tenants_due())
    for tenant in sync_tenant_partitions(context.instance):
        if tenant in due:
            yield dg.RunRequest(run_key=f"retention:{tenant}:{day}", tags=tenants.run_tags(tenant),
                                run_config={"ops": {"apply_retention": {"config": {"tenant": tenant}}}})
