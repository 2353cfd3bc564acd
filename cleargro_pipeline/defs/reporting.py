"""Weekly and monthly reports as assets, one partition per tenant and period: a report is
rendered from the tenant's marts and opportunities and stored inside its encrypted warehouse
(`cleargro_pipeline.reports`); metadata names the period, size and hash only, never a figure."""

from datetime import timedelta
from typing import Iterator

import dagster as dg

from cleargro_pipeline import tenants
from cleargro_pipeline.orchestration.partitions import (iso_week, sync_tenant_partitions,
                                                        tenant_partitions)
from cleargro_pipeline.orchestration.translator import OPPORTUNITIES_KEY

REPORTS_START = "2024-01-01"
# Weeks run Monday to Sunday (ISO weeks): the partition key is the Monday.
weekly_partitions = dg.MultiPartitionsDefinition({
    "tenant": tenant_partitions,
    "week": dg.WeeklyPartitionsDefinition(start_date=REPORTS_START, day_offset=1),
})
monthly_partitions = dg.MultiPartitionsDefinition({
    "tenant": tenant_partitions,
    "month": dg.MonthlyPartitionsDefinition(start_date=REPORTS_START),
})


def _opportunities_dep() -> dg.AssetDep:
    # Reports read the tenant's opportunities: the same tenant, any period.
    return dg.AssetDep(OPPORTUNITIES_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
        partition_dimension_name="tenant"))


def _materialize(context: dg.AssetExecutionContext, period: str) -> dg.MaterializeResult:
    # Start-up cost: the report renderer loads matplotlib (seconds), which every load of the code
    # location (`cleargro run`, the daemon, the UI) would pay; only a report run needs it.
    from cleargro_pipeline import reports

    tenant = context.partition_key.keys_by_dimension["tenant"]
    stored = reports.build_report(tenant, period)
    return dg.MaterializeResult(metadata={
        "tenant": tenant, "period": period, "html_bytes": dg.MetadataValue.int(stored.size_bytes),
        "sha256": stored.sha256,
        "export": f"cleargro report --tenant {tenant} --period {period} --out report.html",
    })


@dg.asset(partitions_def=weekly_partitions, deps=[_opportunities_dep()], group_name="reports",
          description="The tenant's weekly report (ISO week), stored encrypted in its warehouse.")
def weekly_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return _materialize(context, iso_week(context.partition_key.keys_by_dimension["week"]))


@dg.asset(partitions_def=monthly_partitions, deps=[_opportunities_dep()], group_name="reports",
          description="The tenant's monthly report, stored encrypted in its warehouse.")
def monthly_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return _materialize(context, context.partition_key.keys_by_dimension["month"][:7])


weekly_reports = dg.define_asset_job("weekly_reports", selection=[weekly_report],
                                     partitions_def=weekly_partitions)
monthly_reports = dg.define_asset_job("monthly_reports", selection=[monthly_report],
                                      partitions_def=monthly_partitions)


def _report_requests(instance: dg.DagsterInstance, dimension: str, key: str,
                     run_key: str) -> Iterator[dg.RunRequest]:
    for tenant in sync_tenant_partitions(instance):
        yield dg.RunRequest(run_key=f"{tenant}:{run_key}", tags=tenants.run_tags(tenant),
                            partition_key=dg.MultiPartitionKey({"tenant": tenant, dimension: key}))


@dg.schedule(job=weekly_reports, cron_schedule="0 6 * * 1", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def weekly_report_schedule(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
    """Mondays after the daily refresh: last week's report for every tenant."""
    monday = context.scheduled_execution_time.date() - timedelta(days=7)
    monday -= timedelta(days=monday.weekday())
    yield from _report_requests(context.instance, "week", monday.isoformat(),
                                iso_week(monday.isoformat()))


@dg.schedule(job=monthly_reports, cron_schedule="0 6 1 * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def monthly_report_schedule(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
    """The 1st of each month: last month's report for every tenant."""
    first = (context.scheduled_execution_time.date().replace(day=1) - timedelta(days=1)).replace(day=1)
    yield from _report_requests(context.instance, "month", first.isoformat(), first.isoformat()[:7])
