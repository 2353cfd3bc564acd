"""Export of all of a tenant's synced data as one encrypted archive (`cleargro export`): every
raw table, every mart, `insights.opportunities` and `insights.alerts`, read through one
read-only connection (one consistent snapshot) into the archive format of `archive.py`, whose
key is shown once and stored nowhere; each export is registered under `data/exports/<tenant>/`
and purged after 7 days. What is left out and why, the manifest and the expiry rules are in
`controls/README.md`."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import secrets
import stat
import tarfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from cleargro_pipeline.controls import archive

# `export.decrypt` opens any archive (the CLI's `export-open`); callers and tests also know the
# archive's errors, key text and cipher by these names.
from cleargro_pipeline.controls.archive import ExportError, decrypt, manifest_of  # noqa: F401
from cleargro_pipeline.durable import write_atomic
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.security import audit
from cleargro_pipeline.security.stream import (  # noqa: F401
    CHUNK_BYTES,
    HEADER_BYTES,
    KEY_MISMATCH,
    KEY_PREFIX,
    MAGIC,
    TAG_BYTES,
    ArchiveError,
    DecryptingReader,
    EncryptingWriter,
    decode_key,
    encode_key,
    new_key,
)
from cleargro_pipeline.settings import TENANT_NAME, paths
from cleargro_pipeline.warehouse import ALIAS, open_warehouse

log = logging.getLogger(__name__)

PURPOSE = "export"
RETENTION = timedelta(days=7)
BATCH_ROWS = 131_072

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]+$")
_EXPORT_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
_INSIGHTS_TABLES = ("opportunities", "alerts")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    key_text: str  # show once to the requester; never log, audit or store it
    tables: int
    rows: int
    bytes: int
    export_id: str = ""
    sha256: str = ""  # of the archive file
    expires_at: datetime | None = None

    def __repr__(self) -> str:  # keep the key out of tracebacks, logs and reprs
        return (f"ExportResult(path={str(self.path)!r}, key_text='<redacted>', tables={self.tables}, "
                f"rows={self.rows}, bytes={self.bytes}, export_id={self.export_id!r})")

    __str__ = __repr__


# --- what is exported -----------------------------------------------------------------------

def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def exported_tables(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(schema, table) of every table the export holds, sorted (see controls/README.md)."""
    rows = conn.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_catalog = ? order by table_schema, table_name", [ALIAS]).fetchall()
    chosen = []
    for schema, table in rows:
        raw = schema.startswith("raw_") and not schema.endswith("_staging") \
            and not table.startswith("_dlt_")
        if raw or schema == "marts" or (schema == "insights" and table in _INSIGHTS_TABLES):
            if not (_IDENTIFIER.match(schema) and _IDENTIFIER.match(table)):
                raise ExportError(f"table {schema}.{table} has a name that cannot be a file name "
                                  "in the archive")
            chosen.append((schema, table))
    return chosen


def _columns(conn: duckdb.DuckDBPyConnection, qualified: str) -> list[dict[str, str]]:
    return [{"name": name, "type": kind}
            for name, kind, *_ in conn.execute(f"describe {qualified}").fetchall()]


def _table_parquet(conn: duckdb.DuckDBPyConnection, qualified: str) -> tuple[io.BytesIO, int]:
    """The whole table as Parquet in memory, streamed batch by batch from DuckDB."""
    reader = conn.execute(f"select * from {qualified}").to_arrow_reader(BATCH_ROWS)
    buffer, rows = io.BytesIO(), 0
    with pq.ParquetWriter(buffer, reader.schema, compression="zstd") as writer:
        for batch in reader:
            if batch.num_rows:
                writer.write_batch(batch)
                rows += batch.num_rows
    return buffer, rows


# --- export ---------------------------------------------------------------------------------

def registry_dir(tenant: str | None = None) -> Path:
    root = paths().data / "exports"
    return root / tenant if tenant else root


def export(tenant: str, out: Path, *, now: datetime | None = None,
           chunk_size: int = CHUNK_BYTES) -> ExportResult:
    """Write every raw table and mart of `tenant` to an encrypted archive at `out` (mode 0600).

    Returns the key text to show the requester once. Registered for expiry after 7 days and
    audited (`export_created`: ids, counts and sizes only).
    """
    if not TENANT_NAME.match(tenant):
        raise ExportError(f"'{tenant}' is not a valid tenant name")
    out = Path(out).expanduser().absolute()
    if out.is_dir():
        raise ExportError(f"{out} is a folder; name the archive file to write")
    if not out.parent.is_dir():
        raise ExportError(f"folder {out.parent} does not exist")
    if out.exists() or out.is_symlink():
        raise ExportError(f"{out} already exists; refusing to overwrite it (name a new file)")
    created = archive.utc(now)
    expires = created + RETENTION
    export_id = f"{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    key = new_key()

    with open_warehouse(tenant, purpose=PURPOSE, read_only=True) as conn:
        size, digest, entries = archive.write_archive(
            out, key, lambda writer: _write_tar(conn, writer, tenant, export_id, created, expires),
            chunk_size=chunk_size)
    rows = sum(e["rows"] for e in entries)

    record = {"export_id": export_id, "tenant": tenant, "path": str(out),
              "created_at": archive.iso(created), "expires_at": archive.iso(expires),
              "size": size, "sha256": digest, "tables": len(entries), "rows": rows}
    folder = registry_dir(tenant)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(folder / f"{export_id}.json", json.dumps(record, indent=2).encode())
    audit.append("export_created", tenant=tenant, purpose=PURPOSE, export_id=export_id,
                 tables=len(entries), rows=rows, bytes=size, sha256=digest, path=str(out),
                 expires_at=archive.iso(expires))
    return ExportResult(out, encode_key(key), len(entries), rows, size, export_id, digest, expires)


def _write_tar(conn: duckdb.DuckDBPyConnection, writer: EncryptingWriter, tenant: str,
               export_id: str, created: datetime, expires: datetime) -> list[dict]:
    entries = []
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for schema, table in exported_tables(conn):
            qualified = f"{_quote(schema)}.{_quote(table)}"
            columns = _columns(conn, qualified)
            buffer, rows = _table_parquet(conn, qualified)
            data = buffer.getbuffer()
            name = f"{archive.TABLES_DIR}/{schema}.{table}.parquet"
            entries.append({"table": f"{schema}.{table}", "file": name, "rows": rows,
                            "bytes": data.nbytes, "sha256": hashlib.sha256(data).hexdigest(),
                            "columns": columns})
            buffer.seek(0)
            tar.addfile(archive.tar_info(name, data.nbytes, created), buffer)
            del data
            buffer.close()
        manifest = {"format": archive.MANIFEST_FORMAT, "version": archive.MANIFEST_VERSION,
                    "export_id": export_id, "tenant": tenant, "created_at": archive.iso(created),
                    "expires_at": archive.iso(expires), "tables": entries}
        body = json.dumps(manifest, indent=2).encode()
        tar.addfile(archive.tar_info(archive.MANIFEST_NAME, len(body), created),
                    io.BytesIO(body))
    return entries


# --- expiry -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RegisteredExport:
    export_id: str
    tenant: str
    path: Path
    created_at: datetime
    expires_at: datetime
    size: int
    sha256: str
    registry_file: Path


def registered(tenant: str | None = None) -> list[RegisteredExport]:
    """Every export in the registry (of one tenant, or all), oldest first."""
    root = registry_dir()
    folders = [root / tenant] if tenant else sorted(p for p in root.glob("*") if p.is_dir())
    found = []
    for folder in folders:
        for file in sorted(folder.glob("*.json")):
            if not _EXPORT_ID.match(file.stem):
                continue
            try:
                r = json.loads(file.read_text())
                found.append(RegisteredExport(r["export_id"], r["tenant"], Path(r["path"]),
                                              archive.parse_time(r["created_at"]),
                                              archive.parse_time(r["expires_at"]), int(r["size"]),
                                              r["sha256"], file))
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning("export registry entry %s is unreadable (%s); skipped", file,
                            type(error).__name__)
    return sorted(found, key=lambda e: (e.created_at, e.export_id))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _expire(entry: RegisteredExport) -> tuple[str, str | None]:
    """(outcome, reason): delete the archive if the file at its path is still it."""
    path = entry.path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "already_gone", "no file at the recorded path"
    if not stat.S_ISREG(st.st_mode):
        return "kept", "the recorded path is no longer a regular file"
    if st.st_size != entry.size or _file_sha256(path) != entry.sha256:
        return "kept", "the file at the recorded path is no longer this export (size or SHA-256 differ)"
    path.unlink()
    return "deleted", None


def purge_expired(now: datetime | None = None) -> list[str]:
    """Expire every export whose `expires_at` is at or before `now`; returns their ids.

    Each expired export leaves the registry and gets an `export_expired` audit entry whose
    `outcome` is `deleted`, `already_gone` or `kept` (with the `reason`: the file at its path is
    no longer the archive, so it is not ours to delete). An export whose file cannot be checked
    or deleted (I/O or permission error) stays registered, is audited as `failed` and is tried
    again on the next purge.
    """
    moment = archive.utc(now) if now is not None else datetime.now(timezone.utc)
    root = registry_dir()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with file_lock(root / ".purge.lock"):  # two purges at once expire each export once
        return _purge(moment)


def _purge(moment: datetime) -> list[str]:
    expired = []
    for entry in registered():
        if entry.expires_at > moment:
            continue
        try:
            outcome, reason = _expire(entry)
        except OSError as error:
            audit.append("export_expired", tenant=entry.tenant, purpose=PURPOSE,
                         export_id=entry.export_id, path=str(entry.path), outcome="failed",
                         reason=f"cannot check or delete the archive ({type(error).__name__})")
            log.warning("export %s of tenant %s: cannot delete %s (%s); will retry",
                        entry.export_id, entry.tenant, entry.path, type(error).__name__)
            continue
        entry.registry_file.unlink(missing_ok=True)
        detail = {"export_id": entry.export_id, "path": str(entry.path), "outcome": outcome,
                  "bytes": entry.size, "expires_at": archive.iso(entry.expires_at)}
        if reason:
            detail["reason"] = reason
        audit.append("export_expired", tenant=entry.tenant, purpose=PURPOSE, **detail)
        if outcome == "kept":
            log.warning("export %s of tenant %s expired but %s was left in place: %s",
                        entry.export_id, entry.tenant, entry.path, reason)
        expired.append(entry.export_id)
    return expired
