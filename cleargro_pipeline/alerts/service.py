"""Evaluate and dispatch a tenant's alerts: what `cleargro alerts run` and the sensors call.

One pass: read the business detections dbt computed for the latest complete day and the
platform checks from the Dagster instance, apply them to `insights.alerts` (raise, update,
resolve), send what is owed to the tenant's channels, and mark the alerts delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import dagster as dg

from cleargro_pipeline import warehouse
from cleargro_pipeline.alerts import delivery, platform, routing, store
from cleargro_pipeline.alerts.channels import SmtpSettings
from cleargro_pipeline.alerts.model import BUSINESS_TYPES, PLATFORM_TYPES, Alert
from cleargro_pipeline.alerts.store import Detection
from cleargro_pipeline.security import audit
from cleargro_pipeline.settings import lock_timeout_s

_DETECTION_COLUMNS = ("alert_type", "severity", "entity_type", "entity_id", "metric",
                      "observed", "expected", "episode_start", "for_date", "message")


@dataclass
class AlertRun:
    tenant: str
    raised: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    active: list[Alert] = field(default_factory=list)
    dispatch: delivery.DispatchResult | None = None


def run(tenant: str, *, instance: dg.DagsterInstance | None = None, now: datetime | None = None,
        lock_timeout: float | None = None) -> AlertRun:
    """Evaluate and dispatch. Without `instance` the platform checks are skipped (their
    alerts are then neither raised nor resolved). `lock_timeout` defaults to the setting."""
    now = now or datetime.now(timezone.utc)
    lock_timeout = lock_timeout_s() if lock_timeout is None else lock_timeout
    channels = routing.channels(tenant)
    found, evaluated = [], []
    if instance is not None:
        detected = (platform.stale_sources(instance, tenant, now) + platform.failed_runs(instance, tenant)
                    + platform.rejected_credentials(tenant) + platform.api_version_drift(instance, tenant)
                    + platform.quota_exhausted(instance, tenant) + platform.overdue_deletion(tenant, now))
        # One alert per type and entity: the failed run (its link) speaks for a stopped source
        # while it is the latest run; the stopped source keeps the alert raised after it.
        found += list({(d.alert_type, d.entity_id): d for d in reversed(detected)}.values())
        evaluated += PLATFORM_TYPES
    with warehouse.open_warehouse(tenant, purpose="alerts", lock_timeout=lock_timeout) as conn:
        business = business_detections(conn, tenant)
        if business is not None:
            found += business
            evaluated += BUSINESS_TYPES
        synced = store.sync(conn, tenant, found, evaluated, now)
        sent = delivery.dispatch(conn, tenant, store.to_notify(conn, tenant), channels, now=now,
                                 smtp=SmtpSettings.from_env())
        store.mark_notified(conn, sent.notified_alert_ids, now)
        active = store.alerts(conn, tenant, store.ACTIVE)
    audit.append("alerts_evaluated", tenant=tenant, raised=len(synced.raised),
                 resolved=len(synced.resolved), active=len(active))
    return AlertRun(tenant, synced.raised, synced.resolved, active, sent)


def business_detections(conn, tenant: str) -> list[Detection] | None:
    """dbt's detections on the latest complete day; None before dbt has built them."""
    exists = conn.execute(
        "select count(*) from duckdb_tables() where database_name = ? and schema_name = 'insights' "
        "and table_name in ('alert_detections', 'int_insights__as_of')",
        [warehouse.ALIAS]).fetchone()[0]
    if exists < 2:
        return None
    rows = conn.execute(
        f"select {', '.join(_DETECTION_COLUMNS)} from insights.alert_detections "
        "where for_date = (select max(as_of_date) from insights.int_insights__as_of)").fetchall()
    detections = []
    for row in rows:
        values = dict(zip(_DETECTION_COLUMNS, row))
        day = values.pop("for_date")
        detections.append(Detection(
            **{**values, "observed": _number(values["observed"]),
               "expected": _number(values["expected"])},
            detected_on=day, link=_report_command(tenant, day)))
    return detections


def _number(value) -> float | None:
    return None if value is None else float(value)


def _report_command(tenant: str, day) -> str:
    year, week, _ = day.isocalendar()
    return f"cleargro report --tenant {tenant} --period {year}-W{week:02d} --out report.html"


def listing(tenant: str, *, include_resolved: bool = False) -> list[Alert]:
    """The tenant's alerts for `cleargro alerts list` (read-only)."""
    statuses = store.ACTIVE + (("resolved",) if include_resolved else ())
    with warehouse.open_warehouse(tenant, purpose="alerts", read_only=True) as conn:
        if not _has_alerts_table(conn):
            return []
        return store.alerts(conn, tenant, statuses)


def acknowledge(tenant: str, alert_id: str) -> None:
    with warehouse.open_warehouse(tenant, purpose="alerts") as conn:
        store.acknowledge(conn, tenant, alert_id, datetime.now(timezone.utc))
    audit.append("alert_acknowledged", tenant=tenant, alert_id=alert_id)


def _has_alerts_table(conn) -> bool:
    return bool(conn.execute(
        "select count(*) from duckdb_tables() where database_name = ? and schema_name = 'insights' "
        "and table_name = 'alerts'", [warehouse.ALIAS]).fetchone()[0])
