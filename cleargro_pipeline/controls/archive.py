"""The export archive, shared by a tenant's export (`controls/export.py`) and one shopper's
(`privacy/shoppers.py`): a pax tar stream of `tables/<name>.parquet` files and a
`manifest.json`, sealed by `security/stream.py` as it is written (plaintext only in memory),
created once with mode 0600 and never overwritten, and opened again by `decrypt`, which checks
every file against the manifest. Layout and manifest: `controls/README.md`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable

from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.security.stream import (
    CHUNK_BYTES,
    ArchiveError,
    DecryptingReader,
    EncryptingWriter,
    decode_key,
)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "cleargro-export"
MANIFEST_VERSION = 1
TABLES_DIR = "tables"

_MEMBER = re.compile(r"^(?:manifest\.json|tables/[A-Za-z0-9_]+\.[A-Za-z0-9_]+\.parquet)$")


class ExportError(CleargroError):
    """An export cannot be written, found or purged; the message names the tenant, file and cause."""


# --- times, as every manifest and registry entry writes them ---------------------------------

def utc(now: datetime | None) -> datetime:
    """`now` (default: this moment) in UTC, to the second; a naive time is refused."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(timezone.utc).replace(microsecond=0)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as manifests and registry entries store times."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """The inverse of `iso`."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- writing -----------------------------------------------------------------------------------

def open_exclusive(path: Path) -> BinaryIO:
    """A new file (mode 0600) for writing; an existing file or symlink is never overwritten."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise ExportError(f"{path} already exists; refusing to overwrite it (name a new file)") \
            from None
    return os.fdopen(fd, "wb")


def tar_info(name: str, size: int, mtime: datetime) -> tarfile.TarInfo:
    """A member header naming no user or group: mode 0600, the archive's creation time."""
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
    sink = open_exclusive(out)
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


# --- reading (for the requester, and the tests) ------------------------------------------------

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
    f = open_exclusive(path)
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


def manifest_of(files: dict) -> dict:
    """The parsed manifest of a `decrypt` result (bytes or extracted files)."""
    raw = files[MANIFEST_NAME]
    return json.loads(raw if isinstance(raw, bytes) else Path(raw).read_bytes())
