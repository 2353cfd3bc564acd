"""The alert lifecycle table `insights.alerts` in the tenant's warehouse.

One row per condition episode: a detection of the same type on the same entity while an
alert is active updates that alert (its figures and last day) instead of raising another;
an active alert whose condition is no longer detected is resolved. Rows are never deleted,
so the table is also the tenant's alert history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable

from cleargro_pipeline.alerts.model import STATUSES, Alert, alert_id
from cleargro_pipeline.errors import CleargroError

ACTIVE = ("open", "notified", "acknowledged")

_COLUMNS = ("alert_id", "alert_type", "severity", "entity_type", "entity_id", "metric",
            "observed", "expected", "for_date", "message", "status", "link")

DDL = """
create schema if not exists insights;
create table if not exists insights.alerts (
    alert_id varchar primary key,
    alert_type varchar not null,
    severity varchar not null,
    entity_type varchar not null,
    entity_id varchar not null,
    metric varchar not null,
    observed double,
    expected double,
    for_date date not null,          -- the day the condition began
    message varchar not null,
    status varchar not null,
    link varchar,
    last_detected_on date not null,  -- the latest day it was detected
    raised_at timestamptz not null,
    updated_at timestamptz not null,
    notified_at timestamptz,
    acknowledged_at timestamptz,
    resolved_at timestamptz
)
"""


@dataclass(frozen=True)
class Detection:
    """One condition found on one day (from dbt's alert_detections or a platform check)."""
    alert_type: str
    severity: str
    entity_type: str
    entity_id: str
    metric: str
    observed: float | None
    expected: float | None
    episode_start: date
    detected_on: date
    message: str
    link: str | None = None


@dataclass
class SyncResult:
    raised: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)


def ensure_table(conn: Any) -> None:
    conn.execute(DDL)


def sync(conn: Any, tenant: str, detections: Iterable[Detection], evaluated_types: Iterable[str],
         now: datetime) -> SyncResult:
    """Apply one evaluation: raise or update what was detected, resolve what cleared.

    Only alerts of `evaluated_types` can resolve: a check that did not run says nothing
    about its alerts.
    """
    ensure_table(conn)
    result = SyncResult()
    active = {(row["alert_type"], row["entity_id"]): row for row in _rows(conn, ACTIVE)}
    seen = set()
    for found in detections:
        key = (found.alert_type, found.entity_id)
        seen.add(key)
        if key in active:
            _update(conn, active[key]["alert_id"], found, now)
            result.updated.append(active[key]["alert_id"])
        else:
            result.raised.append(_raise(conn, tenant, found, now))
    for key, row in active.items():
        if key[0] in set(evaluated_types) and key not in seen:
            conn.execute("update insights.alerts set status = 'resolved', resolved_at = ?, "
                         "updated_at = ? where alert_id = ?", [now, now, row["alert_id"]])
            result.resolved.append(row["alert_id"])
    return result


def _raise(conn: Any, tenant: str, found: Detection, now: datetime) -> str:
    new_id = alert_id(tenant, found.alert_type, found.entity_id, found.episode_start)
    # The same episode seen again after it resolved (restated data) reopens its own row.
    conn.execute(
        "insert into insights.alerts values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, "
        "null, null, null) on conflict (alert_id) do update set status = 'open', "
        "resolved_at = null, last_detected_on = excluded.last_detected_on, "
        "observed = excluded.observed, expected = excluded.expected, "
        "message = excluded.message, updated_at = excluded.updated_at",
        [new_id, found.alert_type, found.severity, found.entity_type, found.entity_id,
         found.metric, found.observed, found.expected, found.episode_start, found.message,
         found.link, found.detected_on, now, now])
    return new_id


def _update(conn: Any, existing_id: str, found: Detection, now: datetime) -> None:
    conn.execute(
        "update insights.alerts set observed = ?, expected = ?, message = ?, link = ?, "
        "last_detected_on = ?, updated_at = ? where alert_id = ?",
        [found.observed, found.expected, found.message, found.link, found.detected_on, now,
         existing_id])


def mark_notified(conn: Any, alert_ids: Iterable[str], now: datetime) -> None:
    for notified in alert_ids:
        conn.execute("update insights.alerts set status = 'notified', notified_at = ?, "
                     "updated_at = ? where alert_id = ? and status = 'open'",
                     [now, now, notified])


class UnknownAlert(CleargroError, LookupError):
    pass


def acknowledge(conn: Any, tenant: str, acknowledged: str, now: datetime) -> None:
    ensure_table(conn)
    updated = conn.execute(
        "update insights.alerts set status = 'acknowledged', acknowledged_at = ?, updated_at = ? "
        "where alert_id = ? and status in ('open', 'notified') returning alert_id",
        [now, now, acknowledged]).fetchall()
    if not updated:
        raise UnknownAlert(f"tenant '{tenant}' has no open or notified alert {acknowledged!r} "
                           f"(see `cleargro alerts list --tenant {tenant}`)")


def alerts(conn: Any, tenant: str, statuses: Iterable[str] = STATUSES) -> list[Alert]:
    """Alerts of the given statuses, newest first (the table must exist: see ensure_table)."""
    return [Alert(tenant=tenant, **{c: row[c] for c in _COLUMNS})
            for row in _rows(conn, tuple(statuses))]


def to_notify(conn: Any, tenant: str) -> list[Alert]:
    return alerts(conn, tenant, ("open",))


def _rows(conn: Any, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
    marks = ", ".join("?" for _ in statuses)
    cursor = conn.execute(
        f"select * from insights.alerts where status in ({marks}) "
        "order by for_date desc, alert_type, entity_id", list(statuses))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
