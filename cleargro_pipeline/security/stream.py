"""STREAM over AES-256-GCM: the encrypted archive format of every export (chunked online
authenticated encryption, after Hoang, Reyhanitabar, Rogaway and Vizar, CRYPTO 2015, with the
nonce layout of Tink's streaming AEAD and age's payload). `EncryptingWriter` seals a plaintext
stream chunk by chunk, `DecryptingReader` releases a chunk only once its tag verified and ends
only after the final chunk verified as final; a fresh 32-byte key travels as `cgx1-` text. The
byte layout and what each part detects are in `security/README.md`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cleargro_pipeline.errors import CleargroError

# --- format constants (security/README.md) ---
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
KEY_MISMATCH = "archive key does not match (or the archive was altered)"


class ArchiveError(CleargroError):
    """An archive cannot be decrypted: wrong key, altered, truncated or not an export at all."""


# --- the key ------------------------------------------------------------------------------

def new_key() -> bytes:
    """A fresh random key: one per archive, so there is no key derivation step."""
    return AESGCM.generate_key(bit_length=256)


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
            raise ArchiveError("archive too large for its chunk counter")
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
        header = read_exactly(source, HEADER_BYTES)
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
        self._ahead += read_exactly(self._source, self._sealed + 1 - len(self._ahead))
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


def read_exactly(source: BinaryIO, n: int) -> bytes:
    """Up to `n` bytes: fewer only at the end of `source`."""
    parts, want = [], n
    while want > 0:
        part = source.read(want)
        if not part:
            break
        parts.append(part)
        want -= len(part)
    return b"".join(parts)
