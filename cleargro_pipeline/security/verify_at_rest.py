"""Prove that no customer value rests on disk in plaintext: `scan(roots, canaries)` searches
every file under the roots for known customer values, inside gzip, zstd, zip and Parquet too,
fail-closed (what cannot be read is a finding). Roots and findings are described in
`security/README.md`."""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

CHUNK = 8 << 20  # read size: bounds memory per layer
# Compressed bytes per decompress call, so one call's output stays bounded:
# deflate expands at most ~1032x (<= 66 MiB out), zstd up to 32768x (<= 128 MiB out).
STEP = {"gzip": 64 << 10, "zstd": 4 << 10}
MAX_DEPTH = 3  # container layers opened around a byte stream
MAX_EXPANDED = 2 << 30  # decompressed bytes per gzip/zstd stream or zip member
MAX_BUFFER = 256 << 20  # a zip/Parquet found *inside* a stream must be held in memory to seek
BATCH_ROWS = 65_536

_STREAMED = ("gzip", "zstd")
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class Finding:
    path: Path
    kind: str  # "canary" | "unencrypted_duckdb" | "unreadable"
    detail: str


def default_roots(data_dir: Path, extra: Iterable[Path] = ()) -> list[Path]:
    """The data dir, the extras, then the project's entries in the system temp dir."""
    temp = sorted(Path(tempfile.gettempdir()).glob("cleargro*"))
    return list(dict.fromkeys([Path(data_dir), *map(Path, extra), *temp]))


def scan(roots: Iterable[Path], canaries: Sequence[str] = ()) -> list[Finding]:
    """Findings for every file under ``roots``, sorted by path, kind, detail.

    Each canary is matched case-sensitively as UTF-8, UTF-16-LE and JSON-escaped
    bytes, and as text in Parquet values. Without canaries only DuckDB headers are read.
    """
    byte_patterns, text_patterns = _patterns(canaries)
    found: set[Finding] = set()
    for path in _files(roots, found):
        sc = _Scan(path, byte_patterns, text_patterns, found)
        try:
            _scan_file(sc, path)
        except Exception as e:  # a scanner bug must not pass a file silently
            sc.unreadable("file", f"scanner error ({_name(e)})")
    return sorted(found, key=lambda f: (str(f.path), f.kind, f.detail))


# --- canaries -----------------------------------------------------------------


def _patterns(canaries: Sequence[str]):
    """Byte forms (raw search) and text forms (Parquet values) of each canary."""
    if isinstance(canaries, (str, bytes)):
        raise TypeError("canaries must be a sequence of strings, not a single string")
    byte_forms, text_forms = [], []
    for n, c in enumerate(canaries, 1):
        if not isinstance(c, str) or not c:
            raise ValueError(f"canary #{n} is empty or not a string")
        # JSON writers escape quotes/backslashes, and non-ASCII unless ensure_ascii=False.
        texts = {c: "text"}
        for escaped in (json.dumps(c)[1:-1], json.dumps(c, ensure_ascii=False)[1:-1]):
            texts.setdefault(escaped, "json-escaped")
        text_forms += [(n, form, t) for t, form in texts.items()]
        # SQLite may store TEXT as UTF-16 (the Dagster event log is SQLite).
        raw = {c.encode(): "utf-8", c.encode("utf-16-le"): "utf-16-le"}
        for t, form in texts.items():
            raw.setdefault(t.encode(), form)
        byte_forms += [(n, form, b) for b, form in raw.items()]
    return byte_forms, text_forms


@dataclass
class _Scan:
    """Per-file state: where findings go and what to look for."""

    path: Path
    byte_patterns: list
    text_patterns: list
    found: set

    def canary(self, n: int, form: str, where: str) -> None:
        self.found.add(Finding(self.path, "canary", f"canary #{n} ({form}) at {where}"))

    def unreadable(self, where: str, why: str) -> None:
        self.found.add(Finding(self.path, "unreadable", f"{why} at {where}"))


# --- walking ------------------------------------------------------------------


def _files(roots: Iterable[Path], found: set) -> Iterator[Path]:
    """Regular files under the roots, once each, without following symlinks."""
    seen: set[tuple[int, int]] = set()

    def on_error(e: OSError) -> None:
        if not isinstance(e, FileNotFoundError):  # vanished mid-walk: nothing at rest
            found.add(Finding(Path(e.filename), "unreadable", f"cannot list directory ({_name(e)})"))

    for root in roots:
        root = Path(os.path.realpath(root))  # roots are trusted; symlinks inside them are not
        if not root.exists():
            continue
        walk = [(str(root.parent), [], [root.name])] if root.is_file() else os.walk(root, onerror=on_error)
        for dirpath, _, names in walk:
            for name in sorted(names):
                path = Path(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if stat.S_ISREG(st.st_mode) and key not in seen:
                    seen.add(key)
                    yield path


def _scan_file(sc: _Scan, path: Path) -> None:
    try:  # O_NOFOLLOW/O_NONBLOCK: a symlink or FIFO swapped in after lstat is not followed/blocking
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return
    except OSError as e:
        sc.unreadable("file", f"cannot open ({_name(e)})")
        return
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        head = f.read(32)
        # DuckDB main header: magic at 8..12; flags byte 20 is 1 for an encrypted database.
        if head[8:12] == b"DUCK" and head[20:21] != b"\x01":
            sc.found.add(Finding(path, "unencrypted_duckdb", "DuckDB header has no encryption flag"))
        if not sc.byte_patterns:
            return
        f.seek(0)
        kind = _container_kind(head)
        if kind in _STREAMED or kind is None:
            _scan_chunks(sc, _read_chunks(sc, f, "raw bytes"), "", 0)
        else:  # zip/Parquet on disk are seekable: search the raw bytes, then open in place
            _drain(_searched(sc, _read_chunks(sc, f, "raw bytes"), "raw bytes"))
            f.seek(0)
            _scan_seekable(sc, kind, f, "", 0)


# --- byte streams -------------------------------------------------------------


def _container_kind(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"PAR1"):  # a missing footer then fails to open: unreadable, not clean
        return "parquet"
    return None


def _scan_chunks(sc: _Scan, chunks: Iterator[bytes], loc: str, depth: int) -> None:
    """Search a byte stream and, if it is a container, what is inside it."""
    chunks = _searched(sc, chunks, loc or "raw bytes")
    head, chunks = _peek(chunks, 4)
    kind = _container_kind(head)
    if kind and depth >= MAX_DEPTH:
        sc.unreadable(loc or "raw bytes", f"{kind} nested deeper than {MAX_DEPTH} levels")
    elif kind in _STREAMED:
        inner = _child(loc, f"inside {kind}")
        _scan_chunks(sc, _decompressed(sc, kind, chunks, inner), inner, depth + 1)
    elif kind:
        data = _buffered(sc, chunks, loc or "raw bytes")
        if data is not None:
            _scan_seekable(sc, kind, io.BytesIO(data), loc, depth)
    _drain(chunks)  # whatever a container parser left unread is still searched


def _searched(sc: _Scan, chunks: Iterable[bytes], where: str) -> Iterator[bytes]:
    """Pass chunks through, searching them; a tail overlap catches matches across chunks."""
    pending = list(sc.byte_patterns)
    keep = max((len(p[2]) for p in pending), default=1) - 1
    tail = b""
    for chunk in chunks:
        if pending:
            seam = tail + chunk[:keep]
            for pat in [p for p in pending if p[2] in chunk or p[2] in seam]:
                sc.canary(pat[0], pat[1], where)
                pending.remove(pat)
            tail = (tail + chunk[-keep:])[-keep:] if keep else b""
        yield chunk


def _read_chunks(sc: _Scan, f, where: str, limit: int | None = None) -> Iterator[bytes]:
    total = 0
    try:
        while chunk := f.read(CHUNK):
            total += len(chunk)
            if limit is not None and total > limit:
                sc.unreadable(where, f"more than {limit >> 20} MiB decompressed")
                return
            yield chunk
    except Exception as e:  # CRC mismatch, I/O error, corrupt member
        sc.unreadable(where, f"read error ({_name(e)})")


def _decompressed(sc: _Scan, kind: str, chunks: Iterable[bytes], where: str) -> Iterator[bytes]:
    """Concatenated gzip members / zstd frames, fed in STEP-sized pieces so output stays bounded."""
    new = (lambda: zlib.decompressobj(31)) if kind == "gzip" else zstandard.ZstdDecompressor().decompressobj
    d, total, step = None, 0, STEP[kind]
    try:
        for chunk in chunks:
            for i in range(0, len(chunk), step):
                piece = chunk[i : i + step]
                while piece:
                    if d is None or d.eof:
                        piece = piece.lstrip(b"\0")  # gzip allows zero padding between members
                        if not piece:
                            break
                        d = new()
                    out = d.decompress(piece)
                    piece = d.unused_data if d.eof else b""
                    total += len(out)
                    if total > MAX_EXPANDED:
                        sc.unreadable(where, f"more than {MAX_EXPANDED >> 20} MiB decompressed")
                        return
                    if out:
                        yield out
        if d is None or not d.eof:  # zstd stops silently on truncation: check explicitly
            sc.unreadable(where, f"truncated {kind}")
    except (zlib.error, zstandard.ZstdError) as e:
        sc.unreadable(where, f"corrupt {kind} ({_name(e)})")


def _peek(chunks: Iterator[bytes], n: int) -> tuple[bytes, Iterator[bytes]]:
    seen = []
    for chunk in chunks:
        seen.append(chunk)
        if sum(map(len, seen)) >= n:
            break
    return b"".join(c[:n] for c in seen)[:n], itertools.chain(seen, chunks)


def _buffered(sc: _Scan, chunks: Iterator[bytes], where: str) -> bytearray | None:
    # Held in memory, never spilled to a temp file: that would itself put plaintext at rest.
    buf = bytearray()
    for chunk in chunks:
        if len(buf) + len(chunk) > MAX_BUFFER:
            sc.unreadable(where, f"nested container larger than {MAX_BUFFER >> 20} MiB")
            return None
        buf += chunk
    return buf


def _drain(chunks: Iterable[bytes]) -> None:
    for _ in chunks:
        pass


def _name(e: Exception) -> str:
    """Exception type only: messages may quote file content."""
    t = type(e)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"


def _child(loc: str, part: str) -> str:
    return f"{loc} > {part}" if loc else part


# --- seekable containers ------------------------------------------------------


def _scan_seekable(sc: _Scan, kind: str, f, loc: str, depth: int) -> None:
    try:
        if kind == "zip":
            _scan_zip(sc, f, loc, depth)
        else:
            _scan_parquet(sc, f, loc)
    except Exception as e:
        sc.unreadable(loc or "raw bytes", f"corrupt {kind} ({_name(e)})")


def _scan_zip(sc: _Scan, f, loc: str, depth: int) -> None:
    with zipfile.ZipFile(f) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = "".join(c if c.isprintable() else "?" for c in info.filename)[:200]
            where = _child(loc, f"zip member {name}")
            try:
                member = zf.open(info)
            except Exception as e:  # encrypted member, unsupported method, bad local header
                sc.unreadable(where, f"cannot open member ({_name(e)})")
                continue
            with member:
                _scan_chunks(sc, _read_chunks(sc, member, where, MAX_EXPANDED), where, depth + 1)


def _scan_parquet(sc: _Scan, f, loc: str) -> None:
    pf = pq.ParquetFile(f)
    meta_where = _child(loc, "parquet metadata")
    for key, value in (pf.metadata.metadata or {}).items():
        blobs = [key, value]
        if key == b"ARROW:schema":  # base64 hides field names and field metadata
            blobs.append(base64.b64decode(value))
        for blob in blobs:
            _drain(_searched(sc, [blob], meta_where))
    for i in range(len(pf.schema)):  # column names can be customer values too (pivoted data)
        _drain(_searched(sc, [pf.schema.column(i).path.encode()], _child(loc, "parquet schema")))

    done: set[tuple[int, str, str]] = set()
    for batch in pf.iter_batches(batch_size=BATCH_ROWS):
        for name, column in zip(batch.schema.names, batch.columns):
            where = _child(loc, f"parquet column {name}")
            for leaf in _leaves(column):
                for n, form, text in sc.text_patterns:
                    if (n, form, where) not in done and pc.any(pc.match_substring(leaf, text)).as_py():
                        done.add((n, form, where))
                        sc.canary(n, form, where)


def _leaves(arr: pa.Array) -> Iterator[pa.Array]:
    """Every value of a (nested, dictionary-encoded) column as string or binary arrays."""
    t = arr.type
    if pa.types.is_dictionary(t):
        yield from _leaves(arr.dictionary)
    elif pa.types.is_map(t):
        yield from _leaves(arr.keys)
        yield from _leaves(arr.items)
    elif pa.types.is_struct(t):
        for child in arr.flatten():
            yield from _leaves(child)
    elif pa.types.is_nested(t) and not pa.types.is_union(t):
        yield from _leaves(arr.flatten())
    elif not pa.types.is_null(t):
        yield _as_text(arr)


def _as_text(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return arr
    for target in (pa.string(), pa.binary()):  # numbers, dates, decimals, views, fixed-size binary
        try:
            return arr.cast(target)
        except (pa.ArrowException, ValueError):
            pass
    return pa.array([None if v is None else str(v) for v in arr.to_pylist()], pa.string())
