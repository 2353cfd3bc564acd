"""Retention: a per-tenant window of raw history, enforced by a scheduled job. `apply(tenant)`
cuts raw rows older than the tenant's `retention_months` (each table by the time of its rows;
interval histories and snapshots clamped at the cut; current-state tables kept whole), rebuilds
the models reading the cut sources with `--full-refresh` and rewrites the warehouse file so the
cut is physical; a marker file carries an unfinished cut over a crash. The table-by-table rules
and what is never touched: `controls/README.md`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.security import audit
from cleargro_pipeline.settings import paths
from cleargro_pipeline.sources import contract
from cleargro_pipeline.warehouse import dbt as tenant_dbt

PURPOSE = "retention"


class RebuildFailed(CleargroError):
    """dbt could not rebuild the models; names the failed nodes, never data."""


# --- what is cut, table by table -------------------------------------------------------------

ORDERS = "raw_shop.orders"
ORDER_TIME = "coalesce(processed_at, created_at)"
BY_ORDER = ("raw_shop.order_line_items", "raw_shop.order_refund_line_items")
# Current state, no time of its own: kept whole.
KEPT = ("raw_shop.products", "raw_shop.product_variants", "raw_shop.inventory_items",
        "raw_shop.inventory_levels", "raw_shop.locations")
INTERVALS = {  # table -> its key columns (valid_from is the interval start)
    "raw_shop.variant_price_history": ("variant_id",),
    "raw_shop.inventory_level_history": ("inventory_item_id", "location_id"),
}
SNAPSHOTS = {  # dbt snapshots extending the interval histories -> their key columns
    "snapshots.snap_shop__variant_prices": ("variant_id",),
    "snapshots.snap_shop__inventory_levels": ("inventory_item_id", "location_id"),
}
OVERRIDES = {ORDERS: ORDER_TIME, "raw_shop.customers": "updated_at"}


def _column(api_name: str) -> str:
    # Start-up cost: sources.raw imports dlt (about 1 s), and `cleargro tenants` imports this
    # module only to describe and configure the window.
    from cleargro_pipeline.sources.raw import column_name

    return column_name(api_name)


def time_column(qualified: str) -> str | None:
    """The SQL expression giving a raw row's time for the simple (row by row) tables."""
    if qualified in OVERRIDES:
        return OVERRIDES[qualified]
    if qualified in KEPT or qualified in BY_ORDER or qualified in INTERVALS:
        return None
    dataset, name = qualified.split(".")
    return _column(contract.table(dataset, name).cursor)


def kept_tables() -> list[str]:
    return list(KEPT)


# --- the window ----------------------------------------------------------------------------

def months_before(day: date, months: int) -> date:
    """`day` N calendar months earlier (the 31st becomes the month's last day)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    last = (date(year + (month == 12), month % 12 + 1, 1) - date(year, month, 1)).days
    return date(year, month, min(day.day, last))


def cutoff(months: int, now: datetime | None = None) -> datetime:
    """The first moment kept: midnight UTC, N months before today."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    day = months_before(now.date(), months)
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def configure(name: str, months: int | None) -> tenants.Tenant:
    """Set the tenant's window (None: keep all history); the next scheduled run applies it."""
    return tenants.set_retention_months(name, months)


def tenants_due() -> list[str]:
    """Tenants the daily retention job runs for: a window set, or a cut left unfinished."""
    return [t.name for t in tenants.all_tenants()
            if t.retention_months is not None or _marker(t.name).exists()]


def describe(tenant: tenants.Tenant) -> str:
    months = tenant.retention_months
    return f"{months} months of raw history" if months else "all history kept"


# --- applying it ---------------------------------------------------------------------------

@dataclass
class RetentionReport:
    tenant: str
    months: int | None
    cutoff: datetime | None = None
    deleted: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows deleted
    clamped: dict[str, int] = field(default_factory=dict)  # interval rows moved to the cut
    kept_whole: list[str] = field(default_factory=list)
    rebuilt: bool = False
    file_bytes: int | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return any(self.deleted.values()) or any(self.clamped.values())


def _marker(tenant: str) -> Path:
    return paths().tenant_dir(tenant) / "retention.pending"


def apply(tenant: str, *, now: datetime | None = None, rebuild: bool = True) -> RetentionReport:
    """Cut the tenant's raw history to its window, rebuild its models and rewrite the file."""
    started = time.monotonic()
    config = tenants.get(tenant)
    report = RetentionReport(tenant, config.retention_months, kept_whole=kept_tables())
    pending = _marker(tenant)
    if config.retention_months is None and not pending.exists():
        return report
    if not warehouse.exists(tenant):
        return report
    touched: set[str] = set()
    if config.retention_months is not None:
        report.cutoff = cutoff(config.retention_months, now)
        with warehouse.open_warehouse(tenant, purpose=PURPOSE) as conn, \
                warehouse.transaction(conn):
            _cut(conn, report.cutoff, report)
            if report.changed:
                pending.parent.mkdir(parents=True, exist_ok=True)
                pending.write_text(json.dumps(_sources_of(report)))
    if pending.exists():
        touched = set(json.loads(pending.read_text() or "[]"))
        if rebuild:
            report.rebuilt = rebuild_models(tenant, sorted(touched))
        report.file_bytes = warehouse.rewrite(tenant, purpose=PURPOSE)
        pending.unlink()
    report.seconds = round(time.monotonic() - started, 2)
    audit.append("retention_applied", tenant=tenant, months=report.months,
                 cutoff=report.cutoff.isoformat() if report.cutoff else None,
                 deleted=report.deleted, clamped=report.clamped, rebuilt=report.rebuilt,
                 sources=sorted(touched))
    return report


def _sources_of(report: RetentionReport) -> list[str]:
    """The sources whose data the cut changed (the snapshots extend the shop's)."""
    changed = [t for t, n in {**report.deleted, **report.clamped}.items() if n]
    return sorted({"shop" if t.startswith("snapshots.") else
                   t.split(".")[0].removeprefix("raw_").removesuffix("_staging") for t in changed})


def _tables(conn: Any) -> set[str]:
    return {f"{s}.{t}" for s, t in conn.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = ?",
        [warehouse.ALIAS]).fetchall()}


def _delete(conn: Any, qualified: str, where: str, params: list[Any]) -> int:
    schema, table = qualified.split(".")
    (count,) = conn.execute(f'select count(*) from "{schema}"."{table}" where {where}',
                            params).fetchone()
    if count:
        conn.execute(f'delete from "{schema}"."{table}" where {where}', params)
    return int(count)


def _cut(conn: Any, cut: datetime, report: RetentionReport) -> None:
    present = _tables(conn)
    ts, day = cut.isoformat(), cut.date().isoformat()
    # Lines and refunds first: they go with their order.
    if ORDERS in present:
        old_orders = f'select id from raw_shop.orders where {ORDER_TIME} < ?::timestamptz'
        for qualified in BY_ORDER:
            if qualified in present:
                report.deleted[qualified] = _delete(
                    conn, qualified,
                    f"order_id in ({old_orders}) or (order_id not in (select id from "
                    f"raw_shop.orders) and order_updated_at < ?::timestamptz)", [ts, ts])
    else:
        for qualified in BY_ORDER:
            if qualified in present:
                report.deleted[qualified] = _delete(
                    conn, qualified, "order_updated_at < ?::timestamptz", [ts])
    for raw in contract.TABLES:
        qualified = f"{raw.dataset}.{raw.name}"
        if qualified not in present:
            continue
        if qualified in INTERVALS:
            deleted, clamped = _cut_intervals(conn, qualified, INTERVALS[qualified], "valid_from",
                                              None, ts)
            report.deleted[qualified], report.clamped[qualified] = deleted, clamped
            continue
        column = time_column(qualified)
        if column is None:
            continue
        is_date = pa.types.is_date(raw.schema.field(raw.cursor).type) and \
            qualified not in OVERRIDES
        report.deleted[qualified] = _delete(
            conn, qualified, f"{column} < ?::{'date' if is_date else 'timestamptz'}",
            [day if is_date else ts])
    for qualified, keys in SNAPSHOTS.items():
        if qualified in present:
            deleted, clamped = _cut_intervals(conn, qualified, keys, "dbt_valid_from",
                                              "dbt_valid_to", ts)
            report.deleted[qualified], report.clamped[qualified] = deleted, clamped
    # dlt's merge copies are transient (truncated after each load): nothing in them is kept.
    for qualified in sorted(present):
        schema, table = qualified.split(".")
        if schema.startswith("raw_") and schema.endswith("_staging") and not table.startswith("_dlt"):
            (count,) = conn.execute(f'select count(*) from "{schema}"."{table}"').fetchone()
            if count:
                conn.execute(f'delete from "{schema}"."{table}"')
                report.deleted[qualified] = int(count)


def _cut_intervals(conn: Any, qualified: str, keys: tuple[str, ...], start: str,
                   end: str | None, ts: str) -> tuple[int, int]:
    """Versions ended before the cut go; the version in force at the cut starts at the cut."""
    schema, table = qualified.split(".")
    t = f'"{schema}"."{table}"'
    key_match = " and ".join(f't."{k}" is not distinct from m."{k}"' for k in keys)
    key_list = ", ".join(f'"{k}"' for k in keys)
    cut = "?::timestamptz"
    before = conn.execute(f"select count(*) from {t} where {start} < {cut}", [ts]).fetchone()[0]
    if not before:
        return 0, 0
    if end:  # snapshots carry their end: a version closed before (or at) the cut is over
        conn.execute(f"delete from {t} where {start} < {cut} and {end} is not null "
                     f"and {end} <= {cut}", [ts, ts])
    else:
        # Superseded before the cut: not the last version of its key that started before it.
        conn.execute(
            f"delete from {t} as t using (select {key_list}, max({start}) as last_start from {t} "
            f"where {start} < {cut} group by all) m where {key_match} "
            f"and t.{start} < m.last_start", [ts])
        # A version starting exactly at the cut supersedes the one in force before it.
        conn.execute(
            f"delete from {t} as t using (select distinct {key_list} from {t} where {start} = {cut}) m "
            f"where {key_match} and t.{start} < {cut}", [ts, ts])
    clamped = conn.execute(f"select count(*) from {t} where {start} < {cut}", [ts]).fetchone()[0]
    conn.execute(f"update {t} set {start} = {cut} where {start} < {cut}", [ts, ts])
    return int(before - clamped), int(clamped)


# --- rebuilding the models -------------------------------------------------------------------

def has_models(tenant: str) -> bool:
    """Whether dbt has built the tenant's models (a freshly imported tenant has raw data only)."""
    if not warehouse.exists(tenant):
        return False
    with warehouse.open_warehouse(tenant, purpose=PURPOSE, read_only=True) as conn:
        return bool(conn.execute(
            "select count(*) from duckdb_schemas() where database_name = ? and schema_name in "
            "('staging', 'marts')", [warehouse.ALIAS]).fetchone()[0])


def rebuild_models(tenant: str, sources: Iterable[str], *, full_refresh: bool = True,
                   if_built: bool = True) -> bool:
    """Rebuild (dbt build, by default `--full-refresh`) every model downstream of `sources`,
    with the tenant's vars, holding the writer's turn. Returns False, doing nothing, when the
    tenant has no models yet (`if_built`). A model whose raw table is gone builds from an
    empty relation (macros/raw_source.sql)."""
    selectors = [f"source:{s}+" for s in sorted(set(sources))]
    if not selectors or (if_built and not has_models(tenant)):
        return False
    args = [*tenant_dbt.build_args(tenant), "--select", *selectors,
            *(["--full-refresh"] if full_refresh else [])]
    rebuilt = tenant_dbt.run(tenant, args, purpose="rebuild")
    if rebuilt.returncode != 0:
        raise RebuildFailed(f"tenant '{tenant}': dbt rebuild of {' '.join(selectors)} failed "
                            f"(exit {rebuilt.returncode}) at "
                            f"{', '.join(rebuilt.failed) or 'an unknown step'}; rerun "
                            f"`cleargro dbt --tenant {tenant} -- build --full-refresh "
                            f"--select {' '.join(selectors)}` to see why")
    return True
