"""At-least-once alert delivery: a delivery log inside the tenant's warehouse, and the dispatcher.
Every message to a channel is written to `alerts.deliveries` under its idempotency key, marked
'sending' (committed) before the network call, then 'sent' or 'failed' with a backoff; a row
left at 'sending' by a dispatcher that died is resent with the same key, which the receiver uses
to drop the duplicate. The state machine and why one dispatcher per tenant suffices:
`alerts/README.md`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

import duckdb

from cleargro_pipeline.alerts.channels import Channel, DeliveryFailed, SmtpSettings, as_float, send
from cleargro_pipeline.alerts.model import Alert
from cleargro_pipeline.security import audit
from cleargro_pipeline.warehouse import transaction

BACKOFF_BASE_S = 60
BACKOFF_CAP_S = 3600
DELIVERY_STATUSES = ("pending", "sending", "sent", "failed")

_DDL = (
    "create schema if not exists alerts",
    """create table if not exists alerts.deliveries (
        delivery_key varchar primary key,   -- the idempotency key sent with the message
        channel_id varchar not null,
        alert_ids varchar[] not null,
        digest_date date,                   -- null for an immediate message
        status varchar not null,
        attempts integer not null default 0,
        last_error varchar,                 -- error class and code only
        next_attempt_at timestamptz,
        created_at timestamptz not null,
        sent_at timestamptz,
        payload varchar not null            -- the alerts as first sent (JSON)
    )""",
    # Alerts waiting for a digest channel's next daily message; delivery_key once taken.
    """create table if not exists alerts.digest_queue (
        channel_id varchar not null,
        alert_id varchar not null,
        alert varchar not null,
        queued_at timestamptz not null,
        delivery_key varchar,
        primary key (channel_id, alert_id)
    )""",
)
_LOG_COLUMNS = ("delivery_key", "channel_id", "alert_ids", "digest_date", "status", "attempts",
                "last_error", "next_attempt_at", "created_at", "sent_at")


@dataclass
class DispatchResult:
    """What one dispatch did.

    `notified_alert_ids`: alerts (passed in, or carried by a message sent now) with at least
    one delivered message in the log: the ones to mark 'notified'. An alert merely queued
    for a digest is not notified yet; it is in `queued_alert_ids` until its digest is sent
    (passing it again meanwhile is harmless). `unrouted_alert_ids`: alerts no configured
    channel accepts (below every channel's min_severity, or no channels at all).
    """
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    pending: int = 0  # log rows not yet sent after this call (waiting for backoff, or no channel)
    notified_alert_ids: set[str] = field(default_factory=set)
    queued_alert_ids: set[str] = field(default_factory=set)
    unrouted_alert_ids: set[str] = field(default_factory=set)


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for statement in _DDL:
        conn.execute(statement)


def _key(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def immediate_key(tenant: str, alert_id: str, channel: Channel) -> str:
    return _key(tenant, alert_id, channel.channel_id)


def digest_key(tenant: str, channel: Channel, day: date) -> str:
    return _key(tenant, channel.channel_id, "digest", day.isoformat())


def backoff(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failure: 1 min, 2, 4, ... capped at 1 h."""
    return timedelta(seconds=min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_CAP_S))


def _alert_json(alert: Alert) -> dict[str, Any]:
    return {**dataclasses.asdict(alert), "for_date": alert.for_date.isoformat(),
            "observed": as_float(alert.observed), "expected": as_float(alert.expected)}


def _alert_from_json(record: dict[str, Any]) -> Alert:
    known = {f.name for f in dataclasses.fields(Alert)}
    values = {k: v for k, v in record.items() if k in known}
    return Alert(**{**values, "for_date": date.fromisoformat(values["for_date"])})


# --- planning: which rows should exist ----------------------------------------------------

def _record_immediate(conn, tenant: str, alert: Alert, channel: Channel, now: datetime) -> None:
    conn.execute(
        "insert into alerts.deliveries (delivery_key, channel_id, alert_ids, status, attempts, "
        "created_at, payload) values (?, ?, ?, 'pending', 0, ?, ?) on conflict do nothing",
        [immediate_key(tenant, alert.alert_id, channel), channel.channel_id, [alert.alert_id], now,
         json.dumps([_alert_json(alert)])])


def _queue_for_digest(conn, alert: Alert, channel: Channel, now: datetime) -> None:
    conn.execute("insert into alerts.digest_queue values (?, ?, ?, ?, null) on conflict do nothing",
                 [channel.channel_id, alert.alert_id, json.dumps(_alert_json(alert)), now])


def _plan(conn, tenant: str, alerts: list[Alert], channels: list[Channel], now: datetime,
          result: DispatchResult) -> None:
    for alert in alerts:
        routes = [c for c in channels if c.accepts(alert)]
        if not routes:
            result.unrouted_alert_ids.add(alert.alert_id)
        for channel in routes:
            if channel.digest:
                _queue_for_digest(conn, alert, channel, now)
            else:
                _record_immediate(conn, tenant, alert, channel, now)


def _take_digest(conn, tenant: str, channel: Channel, now: datetime) -> None:
    """Turn everything queued for `channel` into today's digest row, once per UTC day."""
    key = digest_key(tenant, channel, now.date())
    if conn.execute("select 1 from alerts.deliveries where delivery_key = ?", [key]).fetchone():
        return  # today's digest exists; later alerts wait for tomorrow's
    queued = conn.execute(
        "select alert_id, alert from alerts.digest_queue where channel_id = ? "
        "and delivery_key is null order by queued_at, alert_id", [channel.channel_id]).fetchall()
    if not queued:
        return  # an empty digest is not sent
    # Row and queue hand-over in one transaction: an alert is in exactly one digest.
    with transaction(conn):
        conn.execute(
            "insert into alerts.deliveries (delivery_key, channel_id, alert_ids, digest_date, "
            "status, attempts, created_at, payload) values (?, ?, ?, ?, 'pending', 0, ?, ?)",
            [key, channel.channel_id, [a for a, _ in queued], now.date(), now,
             json.dumps([json.loads(record) for _, record in queued])])
        conn.execute("update alerts.digest_queue set delivery_key = ? where channel_id = ? "
                      "and alert_id in (select unnest(?))",
                      [key, channel.channel_id, [a for a, _ in queued]])


# --- sending: the protocol ----------------------------------------------------------------

def _due(conn, channel_ids: Iterable[str], now: datetime) -> list[tuple[str, str, str]]:
    # 'pending' and 'sending' (a sender died) go now; 'failed' once its backoff has passed.
    return conn.execute(
        "select delivery_key, channel_id, payload from alerts.deliveries "
        "where channel_id in (select unnest(?)) and (status in ('pending', 'sending') "
        "or (status = 'failed' and next_attempt_at <= ?)) order by created_at, delivery_key",
        [list(channel_ids), now]).fetchall()


def _mark_sending(conn, key: str) -> None:
    # Committed before the network call: after a crash the row says "maybe sent, resend".
    conn.execute("update alerts.deliveries set status = 'sending', attempts = attempts + 1 "
                 "where delivery_key = ?", [key])


def _mark_sent(conn, key: str, now: datetime) -> None:
    conn.execute("update alerts.deliveries set status = 'sent', sent_at = ?, last_error = null, "
                 "next_attempt_at = null where delivery_key = ?", [now, key])


def _mark_failed(conn, key: str, error: str, now: datetime) -> None:
    attempts = conn.execute("select attempts from alerts.deliveries where delivery_key = ?",
                            [key]).fetchone()[0]
    conn.execute("update alerts.deliveries set status = 'failed', last_error = ?, "
                 "next_attempt_at = ? where delivery_key = ?",
                 [error[:500], now + backoff(attempts), key])


def _send_due(conn, tenant: str, by_id: dict[str, Channel], now: datetime,
              smtp: SmtpSettings | None, result: DispatchResult) -> None:
    down: dict[str, str] = {}  # channel id -> its first error in this call
    for key, channel_id, payload in _due(conn, by_id, now):
        _mark_sending(conn, key)
        if channel_id in down:
            # One timeout per channel and call, not one per message: the rest wait for backoff.
            _mark_failed(conn, key, f"not tried: {down[channel_id]}", now)
            result.failed.append(key)
            continue
        alerts = [_alert_from_json(record) for record in json.loads(payload)]
        try:
            send(by_id[channel_id], tenant, alerts, key, smtp=smtp)
        except DeliveryFailed as error:
            down[channel_id] = str(error)
            _mark_failed(conn, key, str(error), now)
            result.failed.append(key)
            continue
        except Exception as error:  # noqa: BLE001 - one unsendable message must not stall the rest
            _mark_failed(conn, key, f"channel {channel_id}: unexpected {type(error).__name__}", now)
            result.failed.append(key)
            continue
        _mark_sent(conn, key, now)
        result.sent.append(key)


def _summarise(conn, alerts: list[Alert], result: DispatchResult) -> None:
    ids = [a.alert_id for a in alerts]
    sent_now = conn.execute("select alert_ids from alerts.deliveries where delivery_key in "
                            "(select unnest(?))", [result.sent]).fetchall()
    notified = conn.execute(
        "select distinct unnest(alert_ids) from alerts.deliveries where status = 'sent' "
        "and list_has_any(alert_ids, ?)", [ids]).fetchall()
    result.notified_alert_ids = {i for (i,) in notified} | {i for (r,) in sent_now for i in r}
    queued = conn.execute("select distinct alert_id from alerts.digest_queue q left join "
                          "alerts.deliveries d using (delivery_key) where d.status is distinct "
                          "from 'sent' and alert_id in (select unnest(?))", [ids]).fetchall()
    result.queued_alert_ids = {i for (i,) in queued} - result.notified_alert_ids
    result.pending = conn.execute(
        "select count(*) from alerts.deliveries where status <> 'sent'").fetchone()[0]


def dispatch(conn: duckdb.DuckDBPyConnection, tenant: str, alerts: list[Alert],
             channels: list[Channel], *, now: datetime, smtp: SmtpSettings | None = None,
             digest_hour: int = 7) -> DispatchResult:
    """Record and send what `alerts` owe `channels`, and retry what earlier calls could not.

    Idempotent: the same alerts again create no rows and resend nothing already sent.
    `conn` is the tenant's writer connection (`open_warehouse(tenant, purpose="alerts")`).
    """
    if now.tzinfo is None:
        raise ValueError("dispatch(now=...) must be timezone-aware")
    if not 0 <= digest_hour <= 23:
        raise ValueError(f"digest_hour must be 0-23, not {digest_hour}")
    strangers = {a.alert_id for a in alerts if a.tenant != tenant}
    if strangers:
        raise ValueError(f"{len(strangers)} alert(s) belong to another tenant than '{tenant}'")
    now = now.astimezone(timezone.utc)
    result = DispatchResult()
    ensure_tables(conn)
    _plan(conn, tenant, alerts, channels, now, result)
    if now.hour >= digest_hour:
        for channel in {c.channel_id: c for c in channels if c.digest}.values():
            _take_digest(conn, tenant, channel, now)
    _send_due(conn, tenant, {c.channel_id: c for c in channels}, now, smtp, result)
    _summarise(conn, alerts, result)
    audit.append("alerts_dispatched", tenant=tenant, alerts=len(alerts), channels=len(channels),
                 sent=len(result.sent), failed=len(result.failed), pending=result.pending,
                 queued=len(result.queued_alert_ids))
    return result


def deliveries(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The delivery log, oldest first (ids, states and times; not the alerts' content)."""
    exists = conn.execute("select 1 from duckdb_tables() where database_name = current_database() "
                          "and schema_name = 'alerts' and table_name = 'deliveries'").fetchone()
    if not exists:
        return []
    rows = conn.execute(f"select {', '.join(_LOG_COLUMNS)} from alerts.deliveries "
                        "order by created_at, delivery_key").fetchall()
    return [dict(zip(_LOG_COLUMNS, row)) for row in rows]
