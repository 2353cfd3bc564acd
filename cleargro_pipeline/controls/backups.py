"""Tenant backups: byte-for-byte copies of a tenant's encrypted warehouse (still under its own
data key), with a manifest of row counts and checksums, verified on restore and purged after
90 days. The design (manifest, restore checks, purge) is in `controls/README.md`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

import duckdb

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.durable import fsync_path, sha256_of, write_atomic
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.security import audit
from cleargro_pipeline.settings import TENANT_NAME, paths

RETENTION = timedelta(days=90)
ID_FORMAT = "%Y%m%dT%H%M%SZ"
BACKUP_ID = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d{1,4}))?$")
MANIFEST_FORMAT = 1
CHECKSUM_ALGORITHM = "duckdb sum(hash(all columns)) per table"
CHUNK = 8 << 20


class BackupError(CleargroError):
    """A backup cannot be taken, listed or restored; the message names tenant, backup and cause."""


class UnknownBackup(BackupError):
    """No backup with that id for the tenant; the message lists the ids there are."""


class CorruptBackup(BackupError):
    """A backup file is missing, or its bytes or contents do not match its manifest."""


class RestoreRefused(BackupError):
    """A backup cannot be restored into this tenant (another tenant's key, unverifiable backup)."""


@dataclass(frozen=True)
class TableCheck:
    rows: int
    checksum: str  # decimal string: a sum of 64-bit hashes does not fit a JSON double


@dataclass(frozen=True)
class Backup:
    id: str
    tenant: str
    taken_at: datetime
    path: Path
    size: int
    sha256: str
    tables: dict[str, TableCheck] = field(default_factory=dict)
    reason: str = "manual"  # manual | scheduled | pre-restore
    verified: bool = True  # False: kept as bytes only (the warehouse did not open then)
    duckdb_version: str = ""
    problem: str | None = None  # set by list_backups: file missing, size mismatch, bad manifest

    @property
    def manifest_path(self) -> Path:
        return self.path.with_name(f"{self.id}.json")

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


@dataclass(frozen=True)
class RestoreReport:
    tenant: str
    backup_id: str
    tables_verified: int
    rows_verified: int
    checksums_compared: bool  # False only when the backup was taken by another DuckDB version
    safety_backup: Backup | None  # the replaced warehouse, kept as a pre-restore backup


# --- where backups live ---------------------------------------------------------------


def backups_root() -> Path:
    return paths().data / "backups"


def backups_dir(tenant: str) -> Path:
    return backups_root() / tenants.validate_name(tenant)


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


# --- checksums ------------------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_checksums(conn: duckdb.DuckDBPyConnection,
                    catalog: str = warehouse.ALIAS) -> dict[str, TableCheck]:
    """Row count and content checksum of every table in `catalog`: numbers only.

    The checksum is the sum (HUGEINT) of DuckDB's hash over all columns of each row:
    independent of row order, sensitive to every value, to duplicates and to NULLs.
    """
    columns: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in conn.execute(
            "select c.schema_name, c.table_name, c.column_name "
            "from duckdb_columns() c join duckdb_tables() t "
            "  on t.database_name = c.database_name and t.schema_name = c.schema_name "
            "  and t.table_name = c.table_name "
            "where c.database_name = ? order by 1, 2, c.column_index", [catalog]).fetchall():
        columns.setdefault((schema, table), []).append(column)
    checks = {}
    for (schema, table), names in sorted(columns.items()):
        hashed = ", ".join(_ident(n) for n in names)
        rows, checksum = conn.execute(
            f"select count(*), coalesce(sum(hash({hashed})), 0)::hugeint "
            f"from {_ident(catalog)}.{_ident(schema)}.{_ident(table)}").fetchone()
        checks[f"{schema}.{table}"] = TableCheck(int(rows), str(checksum))
    return checks


# --- files ----------------------------------------------------------------------------


def _copy(src: BinaryIO, dest: Path) -> tuple[int, str]:
    """Copy to a new file (mode 0600, fsynced); returns size and SHA-256 of what was written."""
    digest, size = hashlib.sha256(), 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size, digest.hexdigest()


def _write_manifest(backup: Backup) -> None:
    body = {
        "format": MANIFEST_FORMAT,
        "id": backup.id,
        "tenant": backup.tenant,
        "taken_at": backup.taken_at.isoformat(),
        "reason": backup.reason,
        "file": backup.path.name,
        "size": backup.size,
        "sha256": backup.sha256,
        "encryption": "AES-256-GCM under the tenant's data key (byte-for-byte copy)",
        "verified": backup.verified,
        "duckdb_version": backup.duckdb_version,
        "checksum_algorithm": CHECKSUM_ALGORITHM,
        "tables": {name: {"rows": t.rows, "checksum": t.checksum}
                   for name, t in backup.tables.items()},
    }
    write_atomic(backup.manifest_path, json.dumps(body, indent=2, sort_keys=True).encode())


def _read_manifest(tenant: str, manifest: Path) -> Backup:
    backup_id = manifest.stem
    path = manifest.with_name(f"{backup_id}.duckdb")
    try:
        body = json.loads(manifest.read_text())
        backup = Backup(
            id=body["id"], tenant=body["tenant"], taken_at=_aware(body["taken_at"]), path=path,
            size=int(body["size"]), sha256=str(body["sha256"]),
            tables={name: TableCheck(int(t["rows"]), str(t["checksum"]))
                    for name, t in body["tables"].items()},
            reason=str(body.get("reason", "manual")), verified=bool(body.get("verified", True)),
            duckdb_version=str(body.get("duckdb_version", "")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Backup(id=backup_id, tenant=tenant, taken_at=_id_time(backup_id) or _EPOCH,
                      path=path, size=0, sha256="", verified=False,
                      problem="manifest is unreadable")
    problem = None
    if backup.id != backup_id:
        problem = f"manifest names backup {backup.id!r}, not {backup_id!r}"
    elif backup.tenant != tenant:
        problem = f"manifest names tenant '{backup.tenant}', not '{tenant}'"
    elif not path.exists():
        problem = "backup file is missing"
    elif path.stat().st_size != backup.size:
        problem = f"backup file is {path.stat().st_size} bytes, the manifest says {backup.size}"
    elif not backup.verified:
        problem = "kept unverified (the warehouse did not open when it was taken)"
    return replace(backup, problem=problem)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _aware(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("taken_at has no time zone")
    return when


def _id_time(backup_id: str) -> datetime | None:
    match = BACKUP_ID.match(backup_id)
    if not match:
        return None
    return datetime.strptime(match.group(1), ID_FORMAT).replace(tzinfo=timezone.utc)


def _sort_key(backup: Backup) -> tuple[datetime, int]:
    match = BACKUP_ID.match(backup.id)
    return backup.taken_at, (int(match.group(2) or 1) if match else 0)


def _new_id(folder: Path, taken_at: datetime) -> str:
    base = taken_at.astimezone(timezone.utc).strftime(ID_FORMAT)
    taken = {p.name.split(".", 1)[0] for p in folder.iterdir()}
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _utc(now: datetime | None) -> datetime:
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("backup times must be timezone-aware (UTC)")
    return now.astimezone(timezone.utc)


# --- taking ---------------------------------------------------------------------------


def take(tenant: str, *, reason: str = "manual", now: datetime | None = None,
         lock_timeout: float | None = None) -> Backup:
    """Back up the tenant's warehouse now; returns the backup (its id is the UTC time).
    `lock_timeout`: how long to wait for the tenant's writer (None: the configured time)."""
    tenants.require(tenant)
    taken_at = _utc(now)
    with warehouse.writer_lock(tenant, lock_timeout=lock_timeout):
        if not warehouse.exists(tenant):
            raise BackupError(f"tenant '{tenant}' has no warehouse yet; nothing to back up")
        return _take_locked(tenant, taken_at=taken_at, reason=reason)


def _take_locked(tenant: str, *, taken_at: datetime, reason: str) -> Backup:
    live = paths().warehouse(tenant)
    try:
        # A writer's checkpoint puts everything (a killed writer's WAL too) into the main file.
        with warehouse.open_file(tenant, live, purpose="backup", read_only=False):
            pass
    except duckdb.Error as error:  # type only: DuckDB's text may quote the data
        raise BackupError(f"tenant '{tenant}': warehouse {live} cannot be checkpointed for a "
                          f"backup ({type(error).__name__}); it may be damaged") from None
    return _keep(tenant, live, taken_at=taken_at, reason=reason, verify=True)


def _keep(tenant: str, source: Path, *, taken_at: datetime, reason: str, verify: bool) -> Backup:
    """Copy `source` into the tenant's backups with its manifest (caller holds the writer lock)."""
    folder = backups_dir(tenant)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    backup_id = _new_id(folder, taken_at)
    final = folder / f"{backup_id}.duckdb"
    partial = folder / f"{backup_id}.duckdb.partial"
    try:
        with open(source, "rb") as src:
            size, sha256 = _copy(src, partial)
        tables: dict[str, TableCheck] = {}
        if verify:  # on the copy itself: the manifest describes exactly the kept bytes
            try:
                with warehouse.open_file(tenant, partial, purpose="backup", read_only=True) as conn:
                    tables = table_checksums(conn)
            except duckdb.Error as error:
                raise BackupError(f"tenant '{tenant}': the copy of warehouse {source} does not read "
                                  f"back ({type(error).__name__}); the warehouse may be damaged; "
                                  "no backup was kept") from None
        os.replace(partial, final)
        backup = Backup(id=backup_id, tenant=tenant, taken_at=taken_at, path=final, size=size,
                        sha256=sha256, tables=tables, reason=reason, verified=verify,
                        duckdb_version=duckdb.__version__)
        _write_manifest(backup)
        fsync_path(folder)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    audit.append("backup_taken", tenant=tenant, backup_id=backup_id, reason=reason,
                 verified=verify, tables=len(tables), rows=backup.rows, size=size)
    return backup


# --- listing --------------------------------------------------------------------------


def list_backups(tenant: str) -> list[Backup]:
    """The tenant's backups, newest first; `problem` flags a missing or mismatched file."""
    tenants.require(tenant)
    folder = backups_dir(tenant)
    if not folder.exists():
        return []
    found = [_read_manifest(tenant, m) for m in folder.glob("*.json") if BACKUP_ID.match(m.stem)]
    return sorted(found, key=_sort_key, reverse=True)


def _find(tenant: str, backup_id: str) -> Backup:
    known = list_backups(tenant)
    for backup in known:
        if backup.id == backup_id:
            return backup
    ids = ", ".join(b.id for b in known) or "none"
    raise UnknownBackup(f"tenant '{tenant}' has no backup {backup_id!r} (known backups: {ids}); "
                        f"see `cleargro backup list --tenant {tenant}`")


# --- restoring ------------------------------------------------------------------------


def restore(tenant: str, backup_id: str, *, now: datetime | None = None,
            lock_timeout: float | None = None) -> RestoreReport:
    """Replace the tenant's warehouse with a verified backup; the replaced one is kept as a backup.

    Restore through `privacy.shoppers.restore_backup`, which also erases again the shoppers
    whose redaction the backup predates."""
    tenants.require(tenant)
    backup = _find(tenant, backup_id)
    where = f"tenant '{tenant}': backup {backup_id}"
    if backup.problem == "manifest is unreadable" or backup.tenant != tenant or backup.id != backup_id:
        raise CorruptBackup(f"{where}: {backup.problem}; nothing was restored")
    if not backup.verified:
        raise RestoreRefused(f"{where} was kept unverified (the warehouse did not open when it was "
                             "taken): it has no checksums to verify a restore against")
    try:
        src = open(backup.path, "rb")
    except FileNotFoundError:
        raise CorruptBackup(f"{where}: file {backup.path} is missing; nothing was restored") from None
    with src:  # one descriptor: what is verified is what is copied, even if the file is purged
        size, sha256 = sha256_of(src)
        if (size, sha256) != (backup.size, backup.sha256):
            raise CorruptBackup(f"{where} is corrupted: its size or SHA-256 does not match the "
                                "manifest; nothing was restored")
        with warehouse.writer_lock(tenant, lock_timeout=lock_timeout):
            safety, checksums_compared = _restore_locked(tenant, backup, src, _utc(now))
    audit.append("backup_restored", tenant=tenant, backup_id=backup_id, tables=len(backup.tables),
                 rows=backup.rows, size=backup.size, checksums_compared=checksums_compared,
                 pre_restore_backup=safety.id if safety else None)
    return RestoreReport(tenant=tenant, backup_id=backup_id, tables_verified=len(backup.tables),
                         rows_verified=backup.rows, checksums_compared=checksums_compared,
                         safety_backup=safety)


def _restore_locked(tenant: str, backup: Backup, src: BinaryIO,
                    now: datetime) -> tuple[Backup | None, bool]:
    where = f"tenant '{tenant}': backup {backup.id}"
    live = paths().warehouse(tenant)
    staged = live.with_name(f"restore-{backup.id}.duckdb.partial")
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.unlink(missing_ok=True)  # an interrupted restore's leftover
    try:
        src.seek(0)
        if _copy(src, staged) != (backup.size, backup.sha256):
            raise CorruptBackup(f"{where} changed while it was copied; nothing was restored")
        try:
            with warehouse.open_file(tenant, staged, purpose="restore", read_only=True) as conn:
                actual = table_checksums(conn)
        except warehouse.WrongKey:
            raise RestoreRefused(f"{where} does not open with tenant '{tenant}''s data key: it "
                                 "is not a backup of this tenant's warehouse (another tenant's "
                                 "backup never opens); nothing was restored") from None
        except warehouse.WarehouseError as error:
            raise CorruptBackup(f"{where} is damaged ({error}); nothing was restored") from None
        except duckdb.Error as error:  # a block fails its AES-GCM tag or checksum while read
            raise CorruptBackup(f"{where} is damaged: reading its tables failed "
                                f"({type(error).__name__}); nothing was restored") from None
        checksums_compared = backup.duckdb_version == duckdb.__version__
        _verify(where, backup.tables, actual, checksums_compared)
        safety = _keep_current(tenant, live, now)
        os.replace(staged, live)
        fsync_path(live.parent)
        return safety, checksums_compared
    finally:
        staged.unlink(missing_ok=True)


def _verify(where: str, expected: dict[str, TableCheck], actual: dict[str, TableCheck],
            compare_checksums: bool) -> None:
    missing, extra = sorted(expected.keys() - actual.keys()), sorted(actual.keys() - expected.keys())
    if missing or extra:
        raise CorruptBackup(f"{where} does not match its manifest (tables missing: "
                            f"{', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'}); "
                            "nothing was restored")
    for name in sorted(expected):
        want, got = expected[name], actual[name]
        if want.rows != got.rows:
            raise CorruptBackup(f"{where} does not match its manifest: table {name} has {got.rows} "
                                f"rows, the manifest says {want.rows}; nothing was restored")
        if compare_checksums and want.checksum != got.checksum:
            raise CorruptBackup(f"{where} does not match its manifest: table {name} has a different "
                                "content checksum; nothing was restored")


def _keep_current(tenant: str, live: Path, now: datetime) -> Backup | None:
    """Keep the warehouse a restore replaces as a `pre-restore` backup (lock held)."""
    wal = _wal(live)
    if not live.exists():
        if wal.exists():
            raise RestoreRefused(f"tenant '{tenant}': {wal} exists without its warehouse; move it "
                                 "away before restoring (it would be replayed onto the backup)")
        return None
    try:
        return _take_locked(tenant, taken_at=now, reason="pre-restore")
    except (warehouse.WarehouseError, BackupError):
        pass
    # The warehouse does not open (the usual reason to restore): keep its bytes unverified,
    # if they are an encrypted DuckDB file. Anything else may be plaintext, which is never
    # copied into the backups (nor silently destroyed).
    with open(live, "rb") as f:
        header = f.read(warehouse.ENCRYPTED_FLAG_OFFSET + 1)
    if header[8:12] != b"DUCK" or header[warehouse.ENCRYPTED_FLAG_OFFSET:] != b"\x01":
        raise RestoreRefused(f"tenant '{tenant}': the current warehouse {live} is not a recognisable "
                             "encrypted DuckDB file; refusing to copy it into the backups or to "
                             "overwrite it: move it out of the data folder, then restore")
    kept = _keep(tenant, live, taken_at=now, reason="pre-restore", verify=False)
    if wal.exists():  # a killed writer's log belongs to the kept bytes, never to the restored file
        shutil.move(wal, kept.path.with_name(kept.path.name + ".wal"))
        fsync_path(kept.path.parent)
    return kept


# --- purging --------------------------------------------------------------------------


def purge(older_than: timedelta = RETENTION, now: datetime | None = None) -> list[str]:
    """Delete every tenant's backups taken before `now - older_than`; returns `tenant/id`s."""
    now = _utc(now)
    cutoff = now - older_than
    root = backups_root()
    purged: list[str] = []
    if not root.exists():
        return purged
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and TENANT_NAME.match(p.name)):
        tenant = folder.name
        files: dict[str, list[Path]] = {}
        for path in folder.iterdir():
            backup_id = path.name.split(".", 1)[0]
            if BACKUP_ID.match(backup_id) and path.is_file():
                files.setdefault(backup_id, []).append(path)
        for backup_id, group in sorted(files.items()):
            manifest = folder / f"{backup_id}.json"
            taken_at = _id_time(backup_id)
            if manifest.exists():
                try:
                    taken_at = _aware(json.loads(manifest.read_text())["taken_at"])
                except (OSError, ValueError, KeyError, TypeError):
                    pass  # unreadable manifest: the id's time decides
            if taken_at is None or taken_at >= cutoff:
                continue
            size = sum(p.stat().st_size for p in group if p != manifest)
            for path in sorted(group, key=lambda p: p == manifest):  # manifest last
                path.unlink(missing_ok=True)
            fsync_path(folder)
            audit.append("backup_purged", tenant=tenant, backup_id=backup_id, size=size,
                         files=len(group), age_days=(now - taken_at).days)
            purged.append(f"{tenant}/{backup_id}")
    return purged
