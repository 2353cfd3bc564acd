"""One shopper's data: find it, export it (data requests), erase it (redactions). Shopify's
`customers/data_request` and `customers/redact` (and `cleargro shopper export|erase`) concern one
shopper of one tenant; the warehouse never holds the Shopify customer id, only its keyed
pseudonym (`request_log.shopper_pseudonym`), and everything here works on that. Where a
shopper's data lives, what an erasure deletes, unlinks and cannot reach, and how a data
request's archive and key reach the merchant: `privacy/README.md`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import tarfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.controls import archive, backups, deletion
from cleargro_pipeline.controls import export as ex
from cleargro_pipeline.durable import write_atomic
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.locks import LockTimeout, file_lock
from cleargro_pipeline.privacy import request_log
from cleargro_pipeline.security import audit, secret_store, stream
from cleargro_pipeline.settings import TENANT_NAME, paths
from cleargro_pipeline.sources import contract
from cleargro_pipeline.sources.raw import column_name
from cleargro_pipeline.warehouse import dbt as tenant_dbt

log = logging.getLogger(__name__)

ERASE_PURPOSE = "shopper_erasure"
EXPORT_PURPOSE = "shopper_export"
PSEUDONYM_SUFFIX = "_pseudonym"
PRIVACY_EXPORT_RETENTION = timedelta(days=30)
PRIVACY_EXPORT_SECRET = "privacy_export.{request_id}"
REQUESTS_TABLE = "privacy.requests"  # the request log's rows about the shopper, in an export
_PSEUDONYM = request_log.PSEUDONYM
_REQUEST_ID = re.compile(r"^pr_[0-9a-f]{32}$")
# Column types that cannot hold a 64-character text (everything else is searched as text).
_NOT_TEXT = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|"
                       r"UBIGINT|UHUGEINT|DECIMAL.*|DOUBLE|FLOAT|REAL|BOOLEAN|DATE|TIME.*|"
                       r"INTERVAL|UUID|BIT)$")


class ShopperError(CleargroError):
    """A shopper's data cannot be found, exported or erased; names the tenant and cause, never
    the shopper."""


class ErasureIncomplete(ShopperError):
    """After an erasure, a table still holds the shopper's pseudonym (named, never the value)."""


# --- where pseudonyms live ------------------------------------------------------------------

def contract_pseudonym_names() -> frozenset[str]:
    """Column names the raw contract stores keyed pseudonyms under (`customer_pseudonym`, ...)."""
    return frozenset(pseudo for t in contract.TABLES for _, pseudo in t.pseudonymised)


def is_pseudonym_column(name: str) -> bool:
    return name in contract_pseudonym_names() or name.endswith(PSEUDONYM_SUFFIX)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, table: str) -> str:
    return f"{_q(schema)}.{_q(table)}"


def _base_tables(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_catalog = ? and table_type = 'BASE TABLE' "
        "order by table_schema, table_name", [warehouse.ALIAS]).fetchall()]


def _columns(conn: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], list[tuple[str, str, bool]]]:
    """(schema, table) of every base table -> [(column, DuckDB type, nullable)], in order."""
    tables = set(_base_tables(conn))
    out: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
    for schema, table, column, kind, nullable in conn.execute(
            "select table_schema, table_name, column_name, data_type, is_nullable "
            "from information_schema.columns where table_catalog = ? "
            "order by table_schema, table_name, ordinal_position", [warehouse.ALIAS]).fetchall():
        if (schema, table) in tables:
            out.setdefault((schema, table), []).append((column, kind, nullable == "YES"))
    return out


def pseudonym_columns(conn: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """`schema.table` -> its columns holding shopper pseudonyms, for every base table of the
    warehouse that has one (raw, dlt staging, marts, snapshots, insights, anything else)."""
    found = {}
    for (schema, table), columns in _columns(conn).items():
        names = [c for c, kind, _ in columns
                 if is_pseudonym_column(c) and not _NOT_TEXT.match(kind)]
        if names:
            found[f"{schema}.{table}"] = names
    return found


def _check_pseudonym(pseudonym: str) -> str:
    if not isinstance(pseudonym, str) or not _PSEUDONYM.match(pseudonym):
        raise ShopperError("a shopper pseudonym is 64 lowercase hex digits")
    return pseudonym


def _split(name: str) -> tuple[str, str]:
    schema, _, table = name.partition(".")
    return schema, table


def _matches(columns: Sequence[str], count: int) -> str:
    values = ", ".join(f"${i + 1}" for i in range(count))
    return " or ".join(f"{_q(c)} in ({values})" for c in columns)


def find(conn: duckdb.DuckDBPyConnection, pseudonym: str) -> dict[str, pa.Table]:
    """Every row of every table that names the shopper: `schema.table` -> those rows (all
    columns, as Arrow), for the tables with at least one such row."""
    _check_pseudonym(pseudonym)
    found = {}
    for name, columns in pseudonym_columns(conn).items():
        rows = conn.execute(f"select * from {_qualified(*_split(name))} "
                            f"where {_matches(columns, 1)}", [pseudonym]).to_arrow_table()
        if rows.num_rows:
            found[name] = rows
    return found


def _references() -> dict[tuple[str, str], tuple[str, str]]:
    """Raw tables that refer to a shopper (the pseudonym is not their key) and have a
    one-column key: (dataset, table) -> (key column, the column other tables refer to a row
    by: `raw_shop.orders` -> ("id", "order_id"))."""
    out = {}
    for raw in contract.TABLES:
        held = {pseudo for _, pseudo in raw.pseudonymised}
        if held and not held & set(raw.primary_key) and len(raw.primary_key) == 1:
            key = column_name(raw.primary_key[0])
            out[(raw.dataset, raw.name)] = (key, f"{raw.name.removesuffix('s')}_{key}")
    return out


def linked(conn: duckdb.DuckDBPyConnection, found: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Rows that hold no pseudonym but belong to rows `find` returned: the line items and
    refunds of the shopper's orders (and the models built from them), by `order_id`. Part of
    a data request's answer (what the shopper bought); an erasure leaves them, as it leaves the
    orders, once the orders no longer name the shopper."""
    references = _references()
    ids: dict[str, set[Any]] = {}
    for name, rows in found.items():
        schema, table = _split(name)
        for (dataset, raw_table), (key, ref) in references.items():
            same = (schema.removesuffix("_staging"), table) == (dataset, raw_table)
            if same and key in rows.column_names:
                ids.setdefault(ref, set()).update(v for v in rows[key].to_pylist() if v is not None)
            if ref in rows.column_names:
                ids.setdefault(ref, set()).update(v for v in rows[ref].to_pylist() if v is not None)
    out = {}
    for (schema, table), columns in _columns(conn).items():
        name = f"{schema}.{table}"
        if name in found:
            continue
        for column, _, _ in columns:
            if ids.get(column):
                rows = conn.execute(f"select * from {_qualified(schema, table)} where {_q(column)} "
                                    "in (select unnest(?))", [sorted(ids[column])]).to_arrow_table()
                if rows.num_rows:
                    out[name] = rows
                break
    return out


def holding(conn: duckdb.DuckDBPyConnection, pseudonyms: Iterable[str]) -> dict[str, list[str]]:
    """`schema.table` -> text columns containing any of `pseudonyms` anywhere in a value (not
    only whole values), over every column of every base table that can hold text: the check
    that does not rely on column names."""
    values = [_check_pseudonym(p) for p in dict.fromkeys(pseudonyms)]
    if not values:
        return {}
    found = {}
    for (schema, table), columns in _columns(conn).items():
        texts = [c for c, kind, _ in columns if not _NOT_TEXT.match(kind)]
        if not texts:
            continue
        probes = [" or ".join(f"contains(cast({_q(c)} as varchar), ${i + 1})"
                              for i in range(len(values))) for c in texts]
        hits = conn.execute(f"select {', '.join(f'coalesce(bool_or({p}), false)' for p in probes)} "
                            f"from {_qualified(schema, table)}", values).fetchone()
        where = [c for c, hit in zip(texts, hits) if hit]
        if where:
            found[f"{schema}.{table}"] = where
    return found


# --- resolving the shopper ------------------------------------------------------------------

def resolve(tenant: str, *, shopper_id: int | str | None = None, pseudonym: str | None = None,
            purpose: str = ERASE_PURPOSE) -> str:
    """The shopper's pseudonym from exactly one of a Shopify customer id (number or
    `gid://shopify/Customer/N`) or the pseudonym itself."""
    if (shopper_id is None) == (pseudonym is None):
        raise ShopperError("give a Shopify customer id or a pseudonym (exactly one)")
    tenants.get(tenant)
    if pseudonym is not None:
        return _check_pseudonym(pseudonym)
    return request_log.shopper_pseudonym(tenant, shopper_id, purpose=purpose)


# --- erasure --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TableErasure:
    deleted: int = 0  # rows removed (the pseudonym identified the row)
    unlinked: int = 0  # rows kept with the pseudonym set to NULL


@dataclass(frozen=True)
class ErasureReport:
    """What one shopper's erasure did: counts only (no pseudonym, no id)."""
    tenant: str
    request_id: str | None
    tables: dict[str, TableErasure]
    models_rebuilt: int  # dbt models and snapshots rebuilt in the run (0: skipped)
    warehouse_bytes: int  # size of the rewritten file (0: there was no warehouse)
    seconds: dict[str, float] = field(default_factory=dict)  # per step, shared by a batch

    @property
    def rows_deleted(self) -> int:
        return sum(t.deleted for t in self.tables.values())

    @property
    def rows_unlinked(self) -> int:
        return sum(t.unlinked for t in self.tables.values())

    @property
    def found(self) -> bool:
        return bool(self.tables)

    def summary(self) -> str:
        if not self.warehouse_bytes:
            return "the tenant has no warehouse: no data about the shopper was held"
        if not self.found:
            return "no data about the shopper was held; warehouse rewritten"
        return (f"{self.rows_deleted} row(s) deleted and {self.rows_unlinked} unlinked in "
                f"{len(self.tables)} table(s); {self.models_rebuilt} model(s) rebuilt; "
                "warehouse rewritten")


@dataclass(frozen=True)
class _Target:
    pseudonym: str
    request_id: str | None

    def __repr__(self) -> str:  # never the pseudonym in a traceback or log
        return f"_Target(request_id={self.request_id!r})"


def erase(tenant: str, *, shopper_id: int | str | None = None, pseudonym: str | None = None,
          request_id: str | None = None, rebuild: bool | None = None) -> ErasureReport:
    """Erase one shopper from the tenant's warehouse (see privacy/README.md).

    `rebuild`: None rebuilds the models when anything about the shopper was found; True always
    (to finish an attempt that died after its scrub). The privacy request (`request_id`, or one
    recorded here) is marked `in_progress`, then `done` or `failed`.
    """
    pseudonym = resolve(tenant, shopper_id=shopper_id, pseudonym=pseudonym)
    if request_id is None:  # on the ledger first: later loads keep the shopper out
        request_id = request_log.record(request_log.CUSTOMERS_REDACT, tenant,
                                             {"customer_pseudonym": pseudonym},
                                             source="cli").request_id
    return erase_many(tenant, [_Target(pseudonym, request_id)], rebuild=rebuild)[0]


def erase_many(tenant: str, targets: Sequence[_Target | tuple[str, str | None]], *,
               rebuild: bool | None = None) -> list[ErasureReport]:
    """Erase several shoppers of one tenant with one scrub, one rebuild and one rewrite.

    `targets`: (pseudonym, request id or None) pairs. Returns one report per target, in order.
    """
    tenants.get(tenant)
    if not targets:
        return []
    targets = [t if isinstance(t, _Target) else _Target(_check_pseudonym(t[0]), t[1])
               for t in targets]
    for t in targets:
        _check_pseudonym(t.pseudonym)
        if t.request_id is not None:
            request_log.mark(t.request_id, "in_progress")
    seconds: dict[str, float] = {}
    try:
        if not warehouse.exists(tenant):
            per_target: list[dict[str, TableErasure]] = [{} for _ in targets]
            models, size = 0, 0
        else:
            started = time.monotonic()
            per_target = _scrub(tenant, [t.pseudonym for t in targets])
            seconds["scrub"] = round(time.monotonic() - started, 2)
            models = 0
            if rebuild or (rebuild is None and any(per_target)):
                started = time.monotonic()
                models = rebuild_models(tenant)
                seconds["rebuild"] = round(time.monotonic() - started, 2)
            started = time.monotonic()
            size = warehouse.rewrite(tenant, purpose=ERASE_PURPOSE)
            seconds["rewrite"] = round(time.monotonic() - started, 2)
            started = time.monotonic()
            _verify(tenant, [t.pseudonym for t in targets])
            seconds["verify"] = round(time.monotonic() - started, 2)
    except BaseException as error:
        for t in targets:
            audit.append("shopper_erasure_failed", tenant=tenant, purpose=ERASE_PURPOSE,
                         request_id=t.request_id, error=type(error).__name__)
            if t.request_id is not None:
                _mark_quietly(t.request_id, "failed", f"erasure failed ({type(error).__name__}); "
                              "process_pending retries it after an hour")
        raise
    reports = []
    for t, tables in zip(targets, per_target):
        report = ErasureReport(tenant, t.request_id, tables, models, size, seconds)
        audit.append("shopper_erased", tenant=tenant, purpose=ERASE_PURPOSE,
                     request_id=t.request_id,
                     tables={name: {"deleted": c.deleted, "unlinked": c.unlinked}
                             for name, c in tables.items()},
                     rows_deleted=report.rows_deleted, rows_unlinked=report.rows_unlinked,
                     models_rebuilt=models, warehouse_bytes=size, batch=len(targets),
                     seconds=seconds)
        if t.request_id is not None:
            request_log.mark(t.request_id, "done", report.summary())
        reports.append(report)
    return reports


def _mark_quietly(request_id: str, status: str, detail: str) -> None:
    try:
        request_log.mark(request_id, status, detail)
    except Exception:  # the original error matters more than a failed status line
        log.exception("privacy request %s: could not record status %s", request_id, status)


def _scrub(tenant: str, pseudonyms: list[str]) -> list[dict[str, TableErasure]]:
    """Delete or unlink every row naming one of `pseudonyms`, in one transaction; per pseudonym
    (in order), the rows touched per table."""
    keyed = _row_identifying_columns()
    result: list[dict[str, TableErasure]] = [{} for _ in pseudonyms]
    index = {p: i for i, p in enumerate(pseudonyms)}
    unique = list(index)
    with warehouse.open_warehouse(tenant, purpose=ERASE_PURPOSE) as conn:
        nullable = {(s, t, c): n for (s, t), cols in _columns(conn).items() for c, _, n in cols}
        with warehouse.transaction(conn):
            for name, columns in pseudonym_columns(conn).items():
                schema, table = _split(name)
                deleting = _deletes_rows(schema, table, columns, keyed, nullable)
                counts = _count(conn, schema, table, columns, unique)
                if not counts:
                    continue
                where = _matches(columns, len(unique))
                if deleting:
                    conn.execute(f"delete from {_qualified(schema, table)} where {where}", unique)
                else:
                    for column in columns:
                        conn.execute(f"update {_qualified(schema, table)} set {_q(column)} = null "
                                     f"where {_matches([column], len(unique))}", unique)
                for pseudonym, rows in counts.items():
                    result[index[pseudonym]][name] = (TableErasure(deleted=rows) if deleting
                                                      else TableErasure(unlinked=rows))
    return result


def _count(conn: duckdb.DuckDBPyConnection, schema: str, table: str, columns: list[str],
           pseudonyms: list[str]) -> dict[str, int]:
    """Rows naming each pseudonym (a row naming it in two columns counts once)."""
    counts: dict[str, int] = {}
    for i, pseudonym in enumerate(pseudonyms):
        (rows,) = conn.execute(f"select count(*) from {_qualified(schema, table)} "
                               f"where {_matches(columns, 1)}", [pseudonym]).fetchone()
        if rows:
            counts[pseudonym] = rows
    return counts


def _deletes_rows(schema: str, table: str, columns: list[str],
                  keyed: dict[tuple[str, str], set[str]],
                  nullable: dict[tuple[str, str, str], bool]) -> bool:
    """Whether the pseudonym identifies the row (delete it) rather than refers to the shopper
    (set it NULL, keep the row). See privacy/README.md."""
    if schema.startswith("raw_") and schema.endswith("_staging"):
        return True  # dlt's merge scratch copy of rows already in raw_<source>
    key_columns = keyed.get((schema, table), set())
    return any(c in key_columns or not nullable.get((schema, table, c), True) for c in columns)


def _row_identifying_columns() -> dict[tuple[str, str], set[str]]:
    """(schema, table) -> columns that identify its rows: the contract's primary keys for raw
    tables; for dbt models and snapshots, their `unique_key` and the columns their tests
    require to be present or unique (a not-null pseudonym cannot be unlinked)."""
    keyed: dict[tuple[str, str], set[str]] = {}
    for raw in contract.TABLES:
        keyed[(raw.dataset, raw.name)] = {column_name(c) for c in raw.primary_key}
    manifest = tenant_dbt.manifest()
    nodes = manifest.get("nodes", {})
    relation_of = {}
    for uid, node in nodes.items():
        if node.get("resource_type") in ("model", "snapshot"):
            relation = (node.get("schema"), node.get("alias") or node.get("name"))
            relation_of[uid] = relation
            unique_key = (node.get("config") or {}).get("unique_key")
            if isinstance(unique_key, str):
                unique_key = [unique_key]
            keyed.setdefault(relation, set()).update(
                k for k in unique_key or () if isinstance(k, str))
    for node in nodes.values():
        if node.get("resource_type") == "test" and node.get("attached_node") in relation_of:
            keyed.setdefault(relation_of[node["attached_node"]], set()).update(_required(node))
    return keyed


def _required(test: dict[str, Any]) -> list[str]:
    """The columns a data test requires to be non-null (or unique): the project's
    primary_key and not_null_columns tests (dbt_project/tests/generic/), dbt's own unique and
    not_null."""
    metadata = test.get("test_metadata") or {}
    kwargs = metadata.get("kwargs") or {}
    if metadata.get("name") in ("primary_key", "not_null_columns"):
        return [c for c in kwargs.get("columns") or () if isinstance(c, str)]
    column = kwargs.get("column_name") or test.get("column_name")
    return [column] if metadata.get("name") in ("unique", "not_null") and column else []


def rebuild_selection() -> list[str]:
    """dbt selectors of every model downstream of a raw table that holds pseudonyms."""
    manifest = tenant_dbt.manifest()
    holders = {(t.dataset, t.name) for t in contract.TABLES if t.pseudonymised}
    selectors = sorted(f"source:{s['source_name']}.{s['name']}+"
                       for s in manifest.get("sources", {}).values()
                       if (s.get("schema"), s.get("identifier") or s.get("name")) in holders)
    if not selectors:
        raise ShopperError("the dbt manifest declares no source for the raw tables that hold "
                           "shopper pseudonyms; run `cleargro init`")
    return selectors


def rebuild_models(tenant: str) -> int:
    """`dbt build --full-refresh` of everything downstream of the raw tables holding
    pseudonyms, under the tenant's writer lock; returns the number of models and snapshots
    built."""
    args = [*tenant_dbt.build_args(tenant), "--full-refresh", "--select", *rebuild_selection()]
    rebuilt = tenant_dbt.run(tenant, args, purpose="erasure")
    if not rebuilt.ok:
        raise ShopperError(f"tenant '{tenant}': rebuilding the models after the erasure failed "
                           f"({rebuilt.describe_failure()}); the raw rows are already erased: "
                           "erase again to finish")
    return rebuilt.built


def _verify(tenant: str, pseudonyms: list[str]) -> None:
    with warehouse.open_warehouse(tenant, purpose=ERASE_PURPOSE, read_only=True) as conn:
        left = {name for p in pseudonyms for name in find(conn, p)}
        left |= set(holding(conn, pseudonyms))
    if left:
        raise ErasureIncomplete(f"tenant '{tenant}': after the erasure, {', '.join(sorted(left))} "
                                "still hold(s) the shopper's pseudonym")


def restore_backup(tenant: str, backup_id: str) -> backups.RestoreReport:
    """Restore a backup (`backups.restore`), then erase again every shopper whose redaction it
    predates: an older backup still holds them. `cleargro restore` comes here."""
    report = backups.restore(tenant, backup_id)
    reapply_erasures(tenant)
    return report


def reapply_erasures(tenant: str) -> list[ErasureReport]:
    """Erase again every shopper a redaction was asked for (after restoring a backup taken
    before it); one batch, no request status changes."""
    pseudonyms = sorted(request_log.redacted_pseudonyms(tenant))
    if not pseudonyms:
        return []
    return erase_many(tenant, [(p, None) for p in pseudonyms])


# --- export ---------------------------------------------------------------------------------

class ShopperExport(NamedTuple):
    path: Path
    key_text: str  # show once to the requester; never log, audit or store it (but sealed below)

    def __repr__(self) -> str:
        return f"ShopperExport(path={str(self.path)!r}, key_text='<redacted>')"

    __str__ = __repr__


def export(tenant: str, *, shopper_id: int | str | None = None, pseudonym: str | None = None,
           out: Path, request_id: str | None = None, source: str | None = None,
           now: datetime | None = None) -> ShopperExport:
    """Everything held about one shopper as an encrypted archive at `out` (mode 0600, never
    overwriting a file); returns (path, key text). Registered for export.py's 7-day expiry,
    like `cleargro export`. With `request_id`, that privacy request is marked done; with
    `source` instead (e.g. "cli"), a data request is recorded first, as `erase` does.
    """
    pseudonym = resolve(tenant, shopper_id=shopper_id, pseudonym=pseudonym, purpose=EXPORT_PURPOSE)
    if request_id is None and source is not None:  # on the ledger before anything is written
        request_id = request_log.record(request_log.CUSTOMERS_DATA_REQUEST, tenant,
                                        {"customer_pseudonym": pseudonym},
                                        source=source).request_id
    made, summary = _export(tenant, pseudonym, out, request_id=request_id, now=now,
                            retention=ex.RETENTION, register=True)
    if request_id is not None:
        request_log.mark(request_id, "done", summary)
    return made


def _export(tenant: str, pseudonym: str, out: Path, *, request_id: str | None,
            now: datetime | None, retention: timedelta,
            register: bool) -> tuple[ShopperExport, str]:
    """Write the archive; returns it and a one-line summary (counts and the file name)."""
    out = Path(out).expanduser().absolute()
    if out.is_dir():
        raise ShopperError(f"{out} is a folder; name the archive file to write")
    if not out.parent.is_dir():
        raise ShopperError(f"folder {out.parent} does not exist")
    created = archive.utc(now)
    expires = created + retention
    export_id = f"{created:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    key = stream.new_key()
    tables = _subject_tables(tenant, pseudonym)
    size, digest, entries = archive.write_archive(
        out, key, lambda writer: _write_tar(writer, tables, tenant, export_id, request_id,
                                            created, expires))
    rows = sum(e["rows"] for e in entries)
    record = {"export_id": export_id, "tenant": tenant, "path": str(out),
              "created_at": archive.iso(created), "expires_at": archive.iso(expires),
              "size": size, "sha256": digest, "tables": len(entries), "rows": rows,
              "subject": "shopper", "request_id": request_id}
    if register:
        folder = ex.registry_dir(tenant)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(folder / f"{export_id}.json", json.dumps(record, indent=2).encode())
    else:  # a data request's archive: its own record, purged with its key after 30 days
        write_atomic(out.with_suffix(".json"), json.dumps(record, indent=2).encode())
    audit.append("shopper_exported", tenant=tenant, purpose=EXPORT_PURPOSE, request_id=request_id,
                 export_id=export_id, tables=len(entries), rows=rows, bytes=size, sha256=digest,
                 path=str(out), expires_at=archive.iso(expires))
    return (ShopperExport(out, stream.encode_key(key)),
            f"archive {out.name}: {rows} row(s) from {len(entries)} table(s)")


_Tables = list[tuple[str, pa.Table, list[dict[str, str]]]]  # (name, rows, columns)


def _subject_tables(tenant: str, pseudonym: str) -> _Tables:
    """(name, rows, columns) of every table about the shopper, sorted by name."""
    found: _Tables = []
    if warehouse.exists(tenant):
        with warehouse.open_warehouse(tenant, purpose=EXPORT_PURPOSE, read_only=True) as conn:
            types = _columns(conn)
            direct = find(conn, pseudonym)
            for name, rows in {**direct, **linked(conn, direct)}.items():
                found.append((name, rows, [{"name": c, "type": kind}
                                           for c, kind, _ in types[_split(name)]]))
    requests = _request_rows(tenant, pseudonym)
    if requests.num_rows:
        found.append((REQUESTS_TABLE, requests,
                      [{"name": f.name, "type": str(f.type)} for f in requests.schema]))
    return sorted(found, key=lambda item: item[0])


def _request_rows(tenant: str, pseudonym: str) -> pa.Table:
    rows = [r for r in request_log.all_requests()
            if r.tenant == tenant and r.customer_pseudonym == pseudonym]
    ids = pa.list_(pa.int64())
    return pa.table({
        "request_id": pa.array([r.request_id for r in rows], pa.string()),
        "topic": pa.array([r.topic for r in rows], pa.string()),
        "source": pa.array([r.source for r in rows], pa.string()),
        "shop_domain": pa.array([r.shop_domain for r in rows], pa.string()),
        "customer_pseudonym": pa.array([r.customer_pseudonym for r in rows], pa.string()),
        "orders_to_redact": pa.array([list(r.orders_to_redact) for r in rows], ids),
        "orders_requested": pa.array([list(r.orders_requested) for r in rows], ids),
        "data_request_id": pa.array([r.data_request_id for r in rows], pa.int64()),
        "received_at": pa.array([r.received_at for r in rows], pa.string()),
        "status": pa.array([r.status for r in rows], pa.string()),
        "updated_at": pa.array([r.updated_at for r in rows], pa.string()),
    })


def _write_tar(writer: stream.EncryptingWriter, tables: _Tables, tenant: str, export_id: str,
               request_id: str | None, created: datetime,
               expires: datetime) -> list[dict[str, Any]]:
    entries = []
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, rows, columns in tables:
            buffer = io.BytesIO()
            pq.write_table(rows, buffer, compression="zstd")
            data = buffer.getbuffer()
            member = f"{archive.TABLES_DIR}/{name}.parquet"
            entries.append({"table": name, "file": member, "rows": rows.num_rows,
                            "bytes": data.nbytes, "sha256": hashlib.sha256(data).hexdigest(),
                            "columns": columns})
            buffer.seek(0)
            tar.addfile(archive.tar_info(member, data.nbytes, created), buffer)
            del data
        manifest = {
            "format": archive.MANIFEST_FORMAT, "version": archive.MANIFEST_VERSION,
            "subject": "shopper", "export_id": export_id, "tenant": tenant,
            "request_id": request_id,
            "created_at": archive.iso(created), "expires_at": archive.iso(expires),
            "about": "Every row this tenant's Cleargro warehouse holds about one shopper: rows "
                     "naming them, the line items and refunds of their orders, and the privacy "
                     "requests about them. The shopper is identified only by a keyed pseudonym "
                     "of their Shopify customer id (customer_pseudonym); no name, e-mail, phone, "
                     "address or payment detail is ever stored.",
            "tables": entries}
        body = json.dumps(manifest, indent=2).encode()
        tar.addfile(archive.tar_info(archive.MANIFEST_NAME, len(body), created), io.BytesIO(body))
    return entries


# --- privacy-request exports waiting for the merchant ---------------------------------------

def privacy_exports_dir() -> Path:
    return paths().data / "privacy" / "exports"


def _secret_name(request_id: str) -> str:
    return PRIVACY_EXPORT_SECRET.format(request_id=request_id)


def _check_request_id(request_id: str) -> str:
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise ShopperError("a privacy request id looks like 'pr_' and 32 hex digits")
    return request_id


def export_for_request(request: request_log.PrivacyRequest) -> Path:
    """Answer one `customers/data_request`: the archive at `data/privacy/exports/<id>.cgx`, its
    key sealed in the secret store (tenant scope, `privacy_export.<id>`), the request done."""
    request_id = _check_request_id(request.request_id)
    if request.customer_pseudonym is None:
        raise ShopperError(f"privacy request {request_id} names no shopper")
    folder = privacy_exports_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = folder / f"{request_id}.cgx"
    out.unlink(missing_ok=True)  # left by an attempt that died: its key was never handed out
    request_log.mark(request_id, "in_progress")
    made, summary = _export(request.tenant, _check_pseudonym(request.customer_pseudonym), out,
                            request_id=request_id, now=None, retention=PRIVACY_EXPORT_RETENTION,
                            register=False)
    secret_store.put(request.tenant, _secret_name(request_id), made.key_text)
    request_log.mark(request_id, "done", f"{summary}; key sealed as "
                          f"{_secret_name(request_id)} until retrieved (retrieve_export)")
    return out


def retrieve_export(tenant: str, request_id: str) -> ShopperExport:
    """The archive and key of an answered data request, for the merchant: the key is read
    (audited), then deleted from the secret store, so it is shown once."""
    request_id = _check_request_id(request_id)
    path = privacy_exports_dir() / f"{request_id}.cgx"
    if not path.exists():
        raise ShopperError(f"no archive for privacy request {request_id} (not answered yet, "
                           "or expired)")
    try:
        key_text = secret_store.get(tenant, _secret_name(request_id), purpose=EXPORT_PURPOSE)
    except secret_store.SecretMissing:
        raise ShopperError(f"the key of privacy request {request_id}'s archive was already "
                           "retrieved; mark the request pending to produce a new archive") from None
    secret_store.delete(tenant, _secret_name(request_id))
    audit.append("shopper_export_retrieved", tenant=tenant, purpose=EXPORT_PURPOSE,
                 request_id=request_id, path=str(path))
    return ShopperExport(path, key_text)


def purge_expired_exports(now: datetime | None = None) -> list[str]:
    """Delete data-request archives (and keys never retrieved) older than 30 days; returns
    their request ids."""
    moment = archive.utc(now)
    purged = []
    for record_file in sorted(privacy_exports_dir().glob("pr_*.json")):
        try:
            record = json.loads(record_file.read_text())
            expires = archive.parse_time(record["expires_at"])
            tenant, request_id = record["tenant"], record["request_id"]
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("privacy export record %s is unreadable; skipped", record_file.name)
            continue
        if expires > moment:
            continue
        (privacy_exports_dir() / f"{request_id}.cgx").unlink(missing_ok=True)
        if TENANT_NAME.match(tenant or "") and tenants.exists(tenant):
            try:
                secret_store.delete(tenant, _secret_name(request_id))
            except secret_store.SecretMissing:
                pass
        record_file.unlink(missing_ok=True)
        audit.append("shopper_export_expired", tenant=tenant, purpose=EXPORT_PURPOSE,
                     request_id=request_id)
        purged.append(request_id)
    return purged


# --- pending privacy requests (the sensor's entry point) ------------------------------------

_TOPICS = (request_log.CUSTOMERS_REDACT, request_log.CUSTOMERS_DATA_REQUEST)
RETRY_AFTER = timedelta(hours=1)  # a failed request is tried again by the first pass after this


def _due(request: request_log.PrivacyRequest, moment: datetime) -> bool:
    if request.status == "pending":
        return True
    if request.customer_pseudonym is None:
        return False  # failed for good: there is no shopper to act on
    if request.status == "in_progress":
        return True
    if request.status != "failed" or not request.updated_at:
        return False
    return archive.parse_time(request.updated_at) + RETRY_AFTER <= moment


def due_requests(tenant: str | None = None, *,
                 now: datetime | None = None) -> list[request_log.PrivacyRequest]:
    """What `process_pending` would take up now, oldest first: cheap (reads the request log
    only), for a sensor to decide whether to launch a run."""
    moment = datetime.now(timezone.utc) if now is None else archive.utc(now)
    return [r for r in request_log.all_requests()
            if r.topic in _TOPICS and r.tenant is not None
            and (tenant is None or r.tenant == tenant) and _due(r, moment)]


def process_pending(tenant: str | None = None, *, now: datetime | None = None) -> list[str]:
    """Handle pending `customers/redact` and `customers/data_request` requests (of one tenant
    or all), oldest first; returns the ids completed.

    Requests left `in_progress` by a pass that died are taken up again, and `failed` ones an
    hour after they failed (an erasure then rebuilds the models whatever it finds).
    Consecutive redactions of a tenant are erased in one batch. A request that fails is
    marked `failed` (error class only) and the others go on; requests of a tenant being
    deleted wait for the deletion; a tenant that no longer exists holds nothing, so its
    requests are done. One pass at a time: a second caller returns [].
    """
    with ExitStack() as held:
        try:
            held.enter_context(file_lock(paths().data / "privacy" / "processing.lock", timeout=0))
        except LockTimeout:
            return []  # another pass is running
        return _process_due(tenant, now)


def _process_due(tenant: str | None, now: datetime | None) -> list[str]:
    todo = due_requests(tenant, now=now)
    done: list[str] = []
    batch: list[request_log.PrivacyRequest] = []
    for request in todo:
        if batch and (request.tenant != batch[0].tenant
                      or request.topic != request_log.CUSTOMERS_REDACT):
            done += _erase_batch(batch)
            batch = []
        if not tenants.exists(request.tenant):
            request_log.mark(request.request_id, "done",
                                  "tenant deleted: no data is held")
            done.append(request.request_id)
        elif deletion.is_deleting(request.tenant):
            continue
        elif request.customer_pseudonym is None:
            request_log.mark(request.request_id, "failed",
                                  "the request names no shopper")
        elif request.topic == request_log.CUSTOMERS_REDACT:
            batch.append(request)
        else:
            try:
                export_for_request(request)
                done.append(request.request_id)
            except Exception as error:
                log.error("privacy request %s (%s) failed: %s", request.request_id,
                          request.topic, type(error).__name__)
                _mark_quietly(request.request_id, "failed",
                              f"export failed ({type(error).__name__}); retried after "
                              "an hour")
    if batch:
        done += _erase_batch(batch)
    return done


def _erase_batch(batch: list[request_log.PrivacyRequest]) -> list[str]:
    try:
        erase_many(batch[0].tenant,
                   [_Target(r.customer_pseudonym, r.request_id) for r in batch],
                   rebuild=True if any(r.status != "pending" for r in batch) else None)
    except Exception as error:  # erase_many marked them failed and audited the error class
        log.error("erasure of %d shopper(s) of tenant %s failed: %s", len(batch), batch[0].tenant,
                  type(error).__name__)
        return []
    return [r.request_id for r in batch]
