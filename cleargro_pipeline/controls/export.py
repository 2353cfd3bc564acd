"""Export of all of a tenant's synced data as one encrypted archive (`cleargro export`).

What is exported
----------------
Read through one read-only warehouse connection (the tenant's shared lock is held for the
whole export, so no pipeline step writes meanwhile and the tables form one consistent
snapshot):

- every table (and view) of every `raw_<source>` schema, with dlt's `_dlt_load_id` / `_dlt_id`
  columns kept as they are (a row's `_dlt_load_id` is the start time of the load that brought
  it, as a Unix timestamp). Not exported: dlt's own bookkeeping tables `_dlt_loads`,
  `_dlt_version` and `_dlt_pipeline_state` (load status, schema versions, the loader's
  compressed state and cursors: loader internals, not data synced from the merchant's
  sources) and the `raw_<source>_staging` schemas (dlt's merge scratch space, a partial copy
  of rows already in `raw_<source>`);
- every table (and view) of `marts`;
- `insights.opportunities` and `insights.alerts` where they exist.
  Staging views, intermediate models, snapshots, the other insights models, stored reports and
  alert delivery logs are derived or operational and are not part of the export.

Each table is written as Parquet (zstd) to an in-memory buffer, record batch by record batch:
no plaintext ever touches the disk. Memory use peaks at the largest table's compressed
Parquet size, since a tar member's size must be known before its bytes are written.

Archive (`<out>`, mode 0600; an existing file is never overwritten)
--------------------------------------------------------------------
A POSIX (pax) tar stream with, in this order:

    tables/<schema>.<table>.parquet   one per table, sorted by schema and table name
    manifest.json                     written last, once every table's SHA-256 is known

`manifest.json`: {"format": "cleargro-export", "version": 1, "export_id", "tenant",
"created_at", "expires_at" (created_at + 7 days; ISO 8601, UTC), "tables": [{"table":
"<schema>.<table>", "file", "rows", "bytes", "sha256" (of the Parquet file), "columns":
[{"name", "type" (DuckDB type)}]}]}.

The tar stream is encrypted as it is written with the STREAM construction (Hoang,
Reyhanitabar, Rogaway, Vizar: "Online Authenticated-Encryption and its Nonce-Reuse
Misuse-Resistance", CRYPTO 2015) over AES-256-GCM, with the nonce layout of Tink's
AES-GCM-HKDF streaming AEAD and age's payload: a fresh random 256-bit key per archive (so no
key derivation step), and

    header  = magic "CGEXPORT" (8 bytes) || version 0x01 (1 byte)
              || chunk size in plaintext bytes (uint32, big-endian; 1 MiB)
              || nonce prefix (7 random bytes)                          = 20 bytes
    chunk i = AES-256-GCM(key, nonce_i, plaintext chunk i, associated data = header)
              = ciphertext || 16-byte tag
    nonce_i = nonce prefix (7 bytes) || i (uint32, big-endian) || last flag (1 byte:
              0x01 for the final chunk, 0x00 for every other)
    archive = header || chunk 0 || chunk 1 || ... || final chunk

Every chunk but the final one holds exactly `chunk size` plaintext bytes; the final chunk holds
1 to `chunk size` bytes (0 only if the whole plaintext is empty). Because the header is the
associated data of every chunk, altering any header byte fails every chunk. The counter in
the nonce detects reordered, dropped or duplicated chunks; the last flag detects an archive
cut off at a chunk boundary (its new final chunk was sealed as "not last"); trailing bytes
make the final chunk fail. A reader releases a chunk's plaintext only after its tag
verified, and accepts the stream only once the final chunk verified as final.

The key is shown to the requester once, as `cgx1-` + unpadded base64url of its 32 bytes
(`ExportResult.key_text`). It is never logged, audited or stored: without it the archive
cannot be read, by us either.

Expiry
------
Each export is registered in `data/exports/<tenant>/<export_id>.json` (mode 0600: id, path,
times, size and SHA-256 of the archive, counts). `purge_expired` deletes archives whose
`expires_at` has passed, wherever they were written, but only while the file at the recorded
path is still that archive (same SHA-256); it removes the registry entry either way and audits
`export_expired` with the outcome. Audit entries (`export_created`, `export_expired`) carry
ids, counts, sizes and paths: never the key, never values.
"""

from __future__ import annotations

import base64
import binascii
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
from typing import Any, BinaryIO, Callable

import duckdb
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cleargro_pipeline.durable import write_atomic
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.security import audit
from cleargro_pipeline.settings import TENANT_NAME, paths
from cleargro_pipeline.warehouse import ALIAS, open_warehouse

log = logging.getLogger(__name__)

PURPOSE = "export"
RETENTION = timedelta(days=7)
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "cleargro-export"
MANIFEST_VERSION = 1
TABLES_DIR = "tables"
BATCH_ROWS = 131_072

# --- archive format constants (see the module docstring) ---
MAGIC = b"CGEXPORT"
VERSION = 1
KEY_BYTES = 32
NONCE_PREFIX_BYTES = 7
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + 1 + 4 + NONCE_PREFIX_BYTES  # 20
CHUNK_BYTES = 1 << 20
MIN_CHUNK_BYTES, MAX_CHUNK_BYTES = 16, 16 << 20  # a reader bounds its memory by this
MAX_CHUNKS = 1 << 32
KEY_PREFIX = "cgx1-"

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]+$")
_MEMBER = re.compile(r"^(?:manifest\.json|tables/[A-Za-z0-9_]+\.[A-Za-z0-9_]+\.parquet)$")
_EXPORT_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
_INSIGHTS_TABLES = ("opportunities", "alerts")


class ExportError(CleargroError):
    """An export cannot be written, found or purged; the message names the tenant, file and cause."""


class ArchiveError(ExportError):
    """An archive cannot be decrypted: wrong key, altered, truncated or not an export at all."""


KEY_MISMATCH = "archive key does not match (or the archive was altered)"


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


# --- the key ------------------------------------------------------------------------------

def encode_key(key: bytes) -> str:
    return KEY_PREFIX + base64.urlsafe_b64encode(key).decode().rstrip("=")


def decode_key(key_text: str) -> bytes:
    """The 32 key bytes of a `cgx1-...` text; the error never echoes what was given."""
    text = "".join(str(key_text).split())  # tolerate spaces and line breaks from copy and paste
    if not text.startswith(KEY_PREFIX):
        raise ArchiveError(f"not a Cleargro export key (it should start with '{KEY_PREFIX}')")
    body = text[len(KEY_PREFIX):]
    try:
        key = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES or encode_key(key) != text:
        raise ArchiveError(f"not a Cleargro export key ('{KEY_PREFIX}' followed by 43 base64url "
                           "characters); check that it was copied whole")
    return key


# --- STREAM over AES-256-GCM ------------------------------------------------------------

def _header(chunk_size: int, nonce_prefix: bytes) -> bytes:
    return MAGIC + bytes([VERSION]) + chunk_size.to_bytes(4, "big") + nonce_prefix


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class EncryptingWriter:
    """A write-only file object: plaintext in, the encrypted archive out to `sink`.

    Holds at most one chunk (plus the last write) of plaintext in memory. `close()` seals the
    final chunk; without it the archive is incomplete and every reader refuses it.
    """

    def __init__(self, sink: BinaryIO, key: bytes, *, chunk_size: int = CHUNK_BYTES,
                 nonce_prefix: bytes | None = None) -> None:
        if not MIN_CHUNK_BYTES <= chunk_size <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk size must be {MIN_CHUNK_BYTES}..{MAX_CHUNK_BYTES} bytes")
        self._sink, self._aead, self._chunk = sink, AESGCM(key), chunk_size
        self._prefix = nonce_prefix if nonce_prefix is not None else os.urandom(NONCE_PREFIX_BYTES)
        if len(self._prefix) != NONCE_PREFIX_BYTES:
            raise ValueError("nonce prefix must be 7 bytes")
        self._header = _header(chunk_size, self._prefix)
        self._buf = bytearray()
        self._index = 0
        self._closed = False
        self.sha256 = hashlib.sha256()
        self.bytes_written = 0
        self._emit(self._header)

    def _emit(self, data: bytes) -> None:
        self._sink.write(data)
        self.sha256.update(data)
        self.bytes_written += len(data)

    def _seal(self, plaintext: bytes | memoryview, last: bool) -> None:
        if self._index >= MAX_CHUNKS:
            raise ExportError("archive too large for its chunk counter")
        nonce = _nonce(self._prefix, self._index, last)
        self._emit(self._aead.encrypt(nonce, bytes(plaintext), self._header))
        self._index += 1

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("write to a closed archive")
        self._buf += data
        # A chunk is sealed as "not last" only once more bytes are known to follow it.
        size = self._chunk
        if len(self._buf) > size:
            view = memoryview(self._buf)
            done = 0
            while len(self._buf) - done > size:
                self._seal(view[done:done + size], last=False)
                done += size
            view.release()
            del self._buf[:done]
        return len(data)

    def close(self) -> None:
        if not self._closed:
            self._seal(bytes(self._buf), last=True)
            self._buf.clear()
            self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def flush(self) -> None:
        pass


class DecryptingReader(io.RawIOBase):
    """A read-only file object over an archive: releases a chunk's plaintext only once its tag
    verified, and reports end of stream only after the final chunk verified as final."""

    def __init__(self, source: BinaryIO, key: bytes) -> None:
        super().__init__()
        self._source = source
        header = _read_exactly(source, HEADER_BYTES)
        if len(header) < len(MAGIC) or header[:len(MAGIC)] != MAGIC:
            raise ArchiveError("not a Cleargro export archive (no CGEXPORT header)")
        if len(header) < HEADER_BYTES:
            raise ArchiveError("archive is truncated: its header is incomplete")
        if header[len(MAGIC)] != VERSION:
            raise ArchiveError(f"archive format version {header[len(MAGIC)]} is not supported "
                               f"(this program reads version {VERSION})")
        chunk = int.from_bytes(header[len(MAGIC) + 1:len(MAGIC) + 5], "big")
        if not MIN_CHUNK_BYTES <= chunk <= MAX_CHUNK_BYTES:
            # The header is authenticated by the first chunk only: an odd value is an alteration.
            raise ArchiveError(KEY_MISMATCH)
        self._header, self._prefix, self._chunk = header, header[-NONCE_PREFIX_BYTES:], chunk
        self._aead = AESGCM(key)
        self._sealed = chunk + TAG_BYTES
        self._ahead = b""  # ciphertext read but not yet decrypted
        self._plain = memoryview(b"")
        self._index = 0
        self._offset = HEADER_BYTES  # file offset of the next chunk
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._plain and not self._done:
            self._plain = memoryview(self._next_chunk())
        n = min(len(buffer), len(self._plain))
        buffer[:n] = self._plain[:n]
        self._plain = self._plain[n:]
        return n

    def drain(self) -> None:
        """Read (and so authenticate) everything up to the final chunk."""
        while not self._done:
            self._next_chunk()
        self._plain = memoryview(b"")

    def _next_chunk(self) -> bytes:
        # One byte past a full chunk tells whether more follows, hence whether this one is last.
        self._ahead += _read_exactly(self._source, self._sealed + 1 - len(self._ahead))
        index, start = self._index, self._offset
        if not self._ahead:
            if index == 0:
                raise ArchiveError("archive is truncated: nothing follows its header")
            raise ArchiveError(f"archive is truncated: it ends after chunk {index - 1} "
                               f"(byte {start}) without its final chunk")
        last = len(self._ahead) <= self._sealed
        sealed, self._ahead = self._ahead[:self._sealed], self._ahead[self._sealed:]
        try:
            plain = self._aead.decrypt(_nonce(self._prefix, index, last), sealed, self._header)
        except InvalidTag:
            raise self._explain(sealed, index, start, last) from None
        self._index, self._offset = index + 1, start + len(sealed)
        self._done = last
        return plain

    def _explain(self, sealed: bytes, index: int, start: int, last: bool) -> ArchiveError:
        if last and self._opens(sealed, index, last=False):
            return ArchiveError(f"archive is truncated: it ends after chunk {index} "
                                f"(byte {start + len(sealed)}) without its final chunk")
        if index == 0:
            return ArchiveError(KEY_MISMATCH)
        # The key is right (chunk 0 verified under it); this part of the file is not genuine.
        if last:
            return ArchiveError(f"archive is truncated or altered at its end: its last chunk "
                                f"(chunk {index}, from byte {start}) does not verify (the key is "
                                "right; earlier chunks verified)")
        return ArchiveError(f"archive was altered: chunk {index} (bytes {start}-"
                            f"{start + len(sealed) - 1}) does not verify (the key is right; "
                            "earlier chunks verified)")

    def _opens(self, sealed: bytes, index: int, *, last: bool) -> bool:
        try:
            self._aead.decrypt(_nonce(self._prefix, index, last), sealed, self._header)
            return True
        except InvalidTag:
            return False


def _read_exactly(source: BinaryIO, n: int) -> bytes:
    parts, want = [], n
    while want > 0:
        part = source.read(want)
        if not part:
            break
        parts.append(part)
        want -= len(part)
    return b"".join(parts)


# --- what is exported -----------------------------------------------------------------------

def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def exported_tables(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(schema, table) of every table the export holds, sorted (see the module docstring)."""
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

def _utc(now: datetime | None) -> datetime:
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(timezone.utc).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def registry_dir(tenant: str | None = None) -> Path:
    root = paths().data / "exports"
    return root / tenant if tenant else root


def _open_exclusive(path: Path) -> BinaryIO:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise ExportError(f"{path} already exists; refusing to overwrite it (name a new file)") \
            from None
    return os.fdopen(fd, "wb")




def _tar_info(name: str, size: int, mtime: datetime) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(mtime.timestamp())
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_archive(out: Path, key: bytes, fill: Callable[[EncryptingWriter], list[dict[str, Any]]],
                  *, chunk_size: int = CHUNK_BYTES) -> tuple[int, str, list[dict[str, Any]]]:
    """Create `out` (0600, never overwritten), let `fill` write the tar stream into an
    EncryptingWriter, fsync; on any failure the partial archive is removed. Returns the
    archive's size, SHA-256 and what `fill` returned (the manifest entries)."""
    sink = _open_exclusive(out)
    try:
        with sink:
            writer = EncryptingWriter(sink, key, chunk_size=chunk_size)
            entries = fill(writer)
            writer.close()
            sink.flush()
            os.fsync(sink.fileno())
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return writer.bytes_written, writer.sha256.hexdigest(), entries


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
    created = _utc(now)
    expires = created + RETENTION
    export_id = f"{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    key = AESGCM.generate_key(bit_length=256)

    with open_warehouse(tenant, purpose=PURPOSE, read_only=True) as conn:
        size, digest, entries = write_archive(
            out, key, lambda writer: _write_tar(conn, writer, tenant, export_id, created, expires),
            chunk_size=chunk_size)
    rows = sum(e["rows"] for e in entries)

    record = {"export_id": export_id, "tenant": tenant, "path": str(out),
              "created_at": _iso(created), "expires_at": _iso(expires), "size": size,
              "sha256": digest, "tables": len(entries), "rows": rows}
    folder = registry_dir(tenant)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(folder / f"{export_id}.json", json.dumps(record, indent=2).encode())
    audit.append("export_created", tenant=tenant, purpose=PURPOSE, export_id=export_id,
                 tables=len(entries), rows=rows, bytes=size, sha256=digest, path=str(out),
                 expires_at=_iso(expires))
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
            name = f"{TABLES_DIR}/{schema}.{table}.parquet"
            entries.append({"table": f"{schema}.{table}", "file": name, "rows": rows,
                            "bytes": data.nbytes, "sha256": hashlib.sha256(data).hexdigest(),
                            "columns": columns})
            buffer.seek(0)
            tar.addfile(_tar_info(name, data.nbytes, created), buffer)
            del data
            buffer.close()
        manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                    "export_id": export_id, "tenant": tenant, "created_at": _iso(created),
                    "expires_at": _iso(expires), "tables": entries}
        body = json.dumps(manifest, indent=2).encode()
        tar.addfile(_tar_info(MANIFEST_NAME, len(body), created), io.BytesIO(body))
    return entries


# --- decrypt (for the requester, and the tests) ----------------------------------------------

def decrypt(archive: Path, key_text: str, dest_dir: Path | None = None) -> dict:
    """Decrypt and check an export archive, chunk by chunk.

    Without `dest_dir`: returns {member name: bytes} ("manifest.json", "tables/<s>.<t>.parquet"),
    all in memory. With `dest_dir` (created with mode 0700 if missing): writes the members
    there (mode 0600, never overwriting a file) and returns {member name: Path}; that plaintext
    is then the requester's to look after. Every file is checked against the manifest (present,
    size, SHA-256) and nothing outside it is accepted; on any error nothing is returned and
    files written so far are removed. Raises ArchiveError with a message that names the cause.
    """
    key = decode_key(key_text)
    archive = Path(archive)
    if dest_dir is not None:
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written: list[Path] = []
    found: dict[str, bytes | Path] = {}
    digests: dict[str, tuple[int, str]] = {}
    try:
        with open(archive, "rb") as source:
            reader = DecryptingReader(source, key)
            try:
                with tarfile.open(fileobj=reader, mode="r|") as tar:
                    for member in tar:
                        _check_member(member, found)
                        stream = tar.extractfile(member)
                        assert stream is not None
                        digest, size, value = _take(stream, member.name, dest_dir, written)
                        found[member.name] = value
                        digests[member.name] = (size, digest)
            except tarfile.TarError as error:
                raise ArchiveError(f"archive decrypted but is not a valid export "
                                   f"({type(error).__name__})") from None
            reader.drain()  # the end of the tar is not the end of the stream: verify it all
        _check_manifest(found, digests, dest_dir)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return found


def _check_member(member: tarfile.TarInfo, found: dict) -> None:
    if not member.isreg() or not _MEMBER.match(member.name):
        raise ArchiveError("archive decrypted but holds an unexpected entry (not a Cleargro export)")
    if member.name in found:
        raise ArchiveError(f"archive decrypted but holds {member.name} twice")


def _take(stream: BinaryIO, name: str, dest_dir: Path | None,
          written: list[Path]) -> tuple[str, int, bytes | Path]:
    digest, size = hashlib.sha256(), 0
    if dest_dir is None:
        data = stream.read()
        return hashlib.sha256(data).hexdigest(), len(data), data
    path = dest_dir / name
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    f = _open_exclusive(path)
    written.append(path)
    with f:
        while block := stream.read(CHUNK_BYTES):
            digest.update(block)
            size += len(block)
            f.write(block)
    return digest.hexdigest(), size, path


def _check_manifest(found: dict, digests: dict[str, tuple[int, str]],
                    dest_dir: Path | None) -> None:
    if MANIFEST_NAME not in found:
        raise ArchiveError("archive decrypted but has no manifest.json")
    raw = found[MANIFEST_NAME]
    try:
        manifest = json.loads(raw if isinstance(raw, bytes) else Path(raw).read_bytes())
        listed = {t["file"]: (t["bytes"], t["sha256"]) for t in manifest["tables"]}
    except (ValueError, KeyError, TypeError):
        raise ArchiveError("archive decrypted but its manifest.json is not valid") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ArchiveError("archive decrypted but its manifest is not a Cleargro export manifest")
    present = set(digests) - {MANIFEST_NAME}
    if present != set(listed):
        missing, extra = sorted(set(listed) - present), sorted(present - set(listed))
        raise ArchiveError(f"archive does not match its manifest (missing: {missing or 'none'}; "
                           f"not listed: {extra or 'none'})")
    for name, expected in listed.items():
        if digests[name] != tuple(expected):
            raise ArchiveError(f"{name} does not match the size and SHA-256 in the manifest")


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
                                              _parse_time(r["created_at"]),
                                              _parse_time(r["expires_at"]), int(r["size"]),
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
    moment = _utc(now) if now is not None else datetime.now(timezone.utc)
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
                  "bytes": entry.size, "expires_at": _iso(entry.expires_at)}
        if reason:
            detail["reason"] = reason
        audit.append("export_expired", tenant=entry.tenant, purpose=PURPOSE, **detail)
        if outcome == "kept":
            log.warning("export %s of tenant %s expired but %s was left in place: %s",
                        entry.export_id, entry.tenant, entry.path, reason)
        expired.append(entry.export_id)
    return expired


def manifest_of(files: dict) -> dict:
    """The parsed manifest of a `decrypt` result (bytes or extracted files)."""
    raw = files[MANIFEST_NAME]
    return json.loads(raw if isinstance(raw, bytes) else Path(raw).read_bytes())
