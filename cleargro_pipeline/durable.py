"""Durability on disk: the one fsync helper for files and folders (a renamed or new file is
durable only once its folder's entry is too), the one atomic file writer, the one shredder and
the one file digest."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 8 << 20


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` all at once: written to a private temporary file beside it
    (created with `mode`, never world-readable in between), fsynced, renamed over `path`, and
    the folder entry fsynced. Readers see the old file or the new one, never half of either."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed a public mode (0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


_SHRED_CHUNK = 1 << 20


def shred(path: Path, *, unlink: bool = True) -> bool:
    """Overwrite a file in place with random bytes and fsync it, then unlink it and fsync its
    folder; False if there is no such file. `unlink=False` keeps the overwritten file, for a
    caller that renames a replacement over it (a missing file in between could be taken for
    "no file yet"). Symlinks are refused, never followed."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return False
    try:
        size, written = os.fstat(fd).st_size, 0
        while written < size:
            written += os.write(fd, os.urandom(min(_SHRED_CHUNK, size - written)))
        os.fsync(fd)
    finally:
        os.close(fd)
    if unlink:
        path.unlink()
        fsync_path(path.parent)
    return True


def sha256_of(src: BinaryIO) -> tuple[int, str]:
    """Size and SHA-256 of what is left to read in `src`, read in chunks."""
    digest, size = hashlib.sha256(), 0
    while chunk := src.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()
