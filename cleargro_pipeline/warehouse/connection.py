"""Opening a tenant's encrypted warehouse: the one module that attaches files and handles data keys.

`open_warehouse` gives pipeline steps a read-write connection and readers a
read-only one to `data/tenants/<tenant>/warehouse.duckdb`, attached as `wh`
with AES-256-GCM (`ENCRYPTION_KEY`), spill files encrypted inside the
tenant's folder, and no extension ever fetched from the network. Access to a
tenant's file is serialised with a file lock (exclusive for writers, shared
for readers) because DuckDB allows one writing process per file: steps of
one tenant queue, whatever the Dagster executor, while tenants run in
parallel. `external_writer` holds that turn for dbt (`warehouse.dbt`), which attaches the
file itself.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

import duckdb

from cleargro_pipeline import tenants
from cleargro_pipeline.durable import fsync_path, shred
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.security import keys
from cleargro_pipeline.settings import lock_timeout_s, paths

ALIAS = "wh"
HEADER_BYTES = 3 * 4096  # main header + two database headers precede the first block
BLOCK_BYTES = 262144  # DuckDB's default block size; files grow in whole blocks
ENCRYPTED_FLAG_OFFSET = 20


class WarehouseError(CleargroError):
    """A warehouse cannot be opened; the message names the tenant and the cause."""


class WrongKey(WarehouseError):
    """The file is intact but the tenant's data key does not open it (another tenant's file)."""


def httpfs_extension_file() -> Path:
    import duckdb_extension_httpfs

    version = duckdb.__version__
    found = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / f"v{version}"
    return found / "httpfs.duckdb_extension"


def ensure_httpfs() -> Path:
    """Install the pinned httpfs binary into DuckDB's local extension directory (offline)."""
    source = httpfs_extension_file()
    if not source.exists():
        raise WarehouseError(f"httpfs for DuckDB {duckdb.__version__} is not installed "
                             f"({source} missing): pin duckdb-extension-httpfs=={duckdb.__version__}")
    conn = duckdb.connect(":memory:", config=_base_config())
    try:
        installed = conn.execute(
            "select installed from duckdb_extensions() where extension_name = 'httpfs'").fetchone()
        if not (installed and installed[0]):
            conn.execute(f"INSTALL '{source}'")
        return source
    finally:
        conn.close()


def _base_config() -> dict[str, str | bool]:
    return {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def _tenant_lock(tenant: str, *, shared: bool, timeout: float | None,
                 create: bool = True) -> AbstractContextManager[bool]:
    """The tenant's lock; `timeout` None is the configured one (`settings.lock_timeout_s`)."""
    wait = lock_timeout_s() if timeout is None else timeout
    return file_lock(paths().tenant_dir(tenant) / "warehouse.lock", shared=shared,
                     timeout=wait, create=create, on_timeout=lambda: WarehouseError(
                         f"tenant '{tenant}': warehouse is busy (another process held it for "
                         f"more than {wait:.0f} s)"))


def check_file(tenant: str, path: Path) -> None:
    """Refuse a file that is not a whole, encrypted DuckDB database before DuckDB touches it."""
    size = path.stat().st_size
    if size < HEADER_BYTES or (size - HEADER_BYTES) % BLOCK_BYTES:
        raise WarehouseError(f"tenant '{tenant}': warehouse file {path} is truncated "
                             f"({size} bytes is not a DuckDB header plus whole blocks)")
    with open(path, "rb") as f:
        header = f.read(ENCRYPTED_FLAG_OFFSET + 1)
    if header[8:12] != b"DUCK":
        raise WarehouseError(f"tenant '{tenant}': {path} is corrupted (no DuckDB header)")
    if header[ENCRYPTED_FLAG_OFFSET] != 1:
        raise WarehouseError(f"tenant '{tenant}': {path} is not encrypted; refusing to use a "
                             "plaintext warehouse")


def _scrub(message: str, secret: str) -> str:
    return message.replace(secret, "<redacted>")


def _attach_error(tenant: str, path: Path, error: Exception, secret: str) -> WarehouseError:
    """Our error for a failed ATTACH. DuckDB names a wrong key only in its text: this is the
    one place that reads it, so callers match the type (WrongKey), never the text."""
    text = _scrub(str(error), secret)
    where = f"tenant '{tenant}': cannot open warehouse {path}"
    if "Wrong encryption key" in text:
        return WrongKey(f"{where}: wrong data key for this file (the file is intact; the key "
                        "does not match it)")
    if "without a key" in text:
        return WarehouseError(f"{where}: the file is encrypted but no key was given")
    return WarehouseError(f"{where}: corrupted or truncated file "
                          f"({type(error).__name__}: {text.splitlines()[0]})")


@contextmanager
def _spill_folder(tenant: str, *, exclusive: bool) -> Iterator[Path]:
    """A fresh spill folder per connection inside the tenant's folder, removed afterwards.

    DuckDB refuses to turn on temp-file encryption over existing temp files, and a process
    that ends without closing its database (a killed loader) leaves them behind: a writer,
    holding the tenant to itself, clears such leftovers first.
    """
    root = paths().tenant_tmp(tenant)
    if exclusive and root.exists():
        for leftover in root.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
    folder = root / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _connect(spill: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    config = {**_base_config(), "temp_directory": str(spill),
              "memory_limit": os.environ.get("CLEARGRO_DUCKDB_MEMORY_LIMIT", "2GB"),
              # Spill files are encrypted; set at connect, as DuckDB refuses the change later.
              "temp_file_encryption": True,
              # Row order in a warehouse table means nothing; keeping it costs bulk loads.
              "preserve_insertion_order": False}
    conn = duckdb.connect(":memory:", config=config)
    if not read_only:
        # Writing an encrypted file needs the OpenSSL crypto module that ships in httpfs.
        conn.execute("LOAD httpfs")
    return conn


def _attach(conn: duckdb.DuckDBPyConnection, tenant: str, path: Path, key: bytes,
            read_only: bool) -> None:
    secret = key.hex()
    options = f"ENCRYPTION_KEY '{secret}'" + (", READ_ONLY" if read_only else "")
    try:
        conn.execute(f"ATTACH '{path}' AS {ALIAS} ({options})")
    except duckdb.Error as error:
        raise _attach_error(tenant, path, error, secret) from None
    conn.execute(f"USE {ALIAS}")
    if read_only:
        # Readers (analysts) may not write query results to files in plaintext, nor
        # attach other databases: no external access, and no way to switch it back on.
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")


def exists(tenant: str) -> bool:
    """Whether the tenant has a warehouse yet (none until its first load or import)."""
    return paths().warehouse(tenants.validate_name(tenant)).exists()


@contextmanager
def open_warehouse(tenant: str, *, purpose: str, read_only: bool = False,
                   lock_timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a connection whose default catalog is the tenant's warehouse (`wh`).
    `lock_timeout`: how long to wait for the tenant's writer (None: the configured time)."""
    tenants.require(tenant)
    path = paths().warehouse(tenant)
    if read_only and not path.exists():
        raise WarehouseError(f"tenant '{tenant}' has no warehouse yet ({path}); "
                             f"run `cleargro run --tenant {tenant}` or `cleargro import` first")
    with _tenant_lock(tenant, shared=read_only, timeout=lock_timeout), \
            open_file(tenant, path, purpose=purpose, read_only=read_only) as conn:
        yield conn


@contextmanager
def writer_lock(tenant: str, *, lock_timeout: float | None = None) -> Iterator[Path]:
    """Hold the tenant's writer lock without opening anything (backups and restores); yields
    the warehouse path. Inside, open files with `open_file`: open_warehouse would wait for
    this very lock."""
    tenants.require(tenant)
    with _tenant_lock(tenant, shared=False, timeout=lock_timeout):
        yield paths().warehouse(tenant)


@contextmanager
def wait_for_writers(tenant: str, *, lock_timeout: float | None = None) -> Iterator[bool]:
    """Wait until no process writes or reads the tenant's warehouse, and keep it so for the
    block (tenant deletion); yields whether the tenant had a lock file. Never creates one
    (nor the tenant's folder), and works for a tenant no longer registered."""
    with _tenant_lock(tenants.validate_name(tenant), shared=False, timeout=lock_timeout,
                      create=False) as held:
        yield held


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: committed at its end, rolled back on any exception
    (KeyboardInterrupt included)."""
    conn.execute("begin transaction")
    try:
        yield conn
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise


@contextmanager
def open_file(tenant: str, path: Path, *, purpose: str,
              read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Attach `path` (the tenant's warehouse or an encrypted copy of it, e.g. a backup) as `wh`
    with the tenant's data key, as open_warehouse does. The caller holds the tenant's lock
    (`writer_lock`, or a reader's shared lock for read_only)."""
    with _spill_folder(tenant, exclusive=not read_only) as spill:
        if path.exists():
            check_file(tenant, path)
        key = _unwrap_data_key(tenant, purpose)
        conn = _connect(spill, read_only=read_only)
        try:
            _attach(conn, tenant, path, key, read_only)
            yield conn
            if not read_only:
                conn.execute(f"CHECKPOINT {ALIAS}")
        finally:
            conn.close()


def _unwrap_data_key(tenant: str, purpose: str) -> bytes:
    try:
        return keys.unwrap_tenant_key(tenant, "data", purpose)
    except keys.KeyUnavailable as error:
        raise WarehouseError(f"tenant '{tenant}': cannot open warehouse: {error}") from None


class ExternalWriter(NamedTuple):
    """What a process that opens the file itself (dbt) needs: the path, the data key and a
    spill folder. Only `warehouse.dbt` asks for it, to put the key in dbt's environment."""

    path: Path
    key: bytes
    spill: Path


@contextmanager
def external_writer(tenant: str, *, purpose: str,
                    lock_timeout: float | None = None) -> Iterator[ExternalWriter]:
    """Hold the writer's turn for another process that attaches the tenant's file."""
    tenants.require(tenant)
    path = paths().warehouse(tenant)
    with _tenant_lock(tenant, shared=False, timeout=lock_timeout), \
            _spill_folder(tenant, exclusive=True) as spill:
        if path.exists():
            check_file(tenant, path)
        yield ExternalWriter(path, _unwrap_data_key(tenant, purpose), spill)


@contextmanager
def open_session(tenant: str, session: ExternalWriter, *,
                 read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """The file of an `external_writer` session attached as `wh` with the session's key,
    between the other process's turns (its lock is still held; no second key release)."""
    conn = _connect(session.spill, read_only=read_only)
    try:
        _attach(conn, tenant, session.path, session.key, read_only)
        yield conn
        if not read_only:
            conn.execute(f"CHECKPOINT {ALIAS}")
    finally:
        conn.close()


def rewrite(tenant: str, *, purpose: str, lock_timeout: float | None = None) -> int:
    """Rewrite the tenant's warehouse into a fresh encrypted file (same key) and swap it in.

    DuckDB keeps deleted rows' bytes in the file until their blocks are reused; copying the
    live data into a new file is what makes an erasure or a retention cut physical. Returns
    the new file's size. The old file is overwritten before it is unlinked.
    """
    with writer_lock(tenant, lock_timeout=lock_timeout) as path:
        fresh = path.with_name(path.name + ".rewrite")
        for leftover in (fresh, _wal_of(fresh)):
            leftover.unlink(missing_ok=True)
        with open_file(tenant, path, purpose=purpose) as conn:
            key = _unwrap_data_key(tenant, purpose)
            try:
                conn.execute(f"ATTACH '{fresh}' AS rewritten (ENCRYPTION_KEY '{key.hex()}')")
                conn.execute(f"COPY FROM DATABASE {ALIAS} TO rewritten")
                conn.execute("DETACH rewritten")
            except duckdb.Error as error:
                fresh.unlink(missing_ok=True)
                raise WarehouseError(f"tenant '{tenant}': rewrite failed "
                                     f"({type(error).__name__})") from None
        check_file(tenant, fresh)
        fsync_path(fresh)
        shred(path, unlink=False)  # its blocks held the deleted rows; the fresh file replaces it
        os.replace(fresh, path)
        fsync_path(path.parent)
        return path.stat().st_size


def _wal_of(path: Path) -> Path:
    return path.with_name(path.name + ".wal")
