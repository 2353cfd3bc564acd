"""Append-only, hash-chained audit log.

Each entry is one JSON line carrying the SHA-256 of the previous entry, so
editing, deleting or reordering any entry breaks the chain. A head file holds
the last sequence number and hash so that cutting entries off the end is
detected too. Writers from several processes serialise on an exclusive lock.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.settings import paths

GENESIS = "0" * 64


class AuditChainBroken(CleargroError):
    """The chain does not verify; the message names the first broken entry."""


def principal() -> str:
    """The acting identity: a configured service identity, else the OS user."""
    return os.environ.get("CLEARGRO_PRINCIPAL") or getpass.getuser()


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _head_file(log: Path) -> Path:
    return log.with_suffix(".head")


def _locked(log: Path) -> AbstractContextManager[bool]:
    return file_lock(log.with_suffix(".lock"))


def _last_entry(log: Path) -> dict[str, Any] | None:
    if not log.exists() or log.stat().st_size == 0:
        return None
    with open(log, "rb") as f:
        f.seek(max(0, log.stat().st_size - 65536))
        lines = f.read().splitlines()
    return json.loads(lines[-1])


def append(action: str, *, tenant: str | None = None, purpose: str | None = None,
           **detail: Any) -> dict[str, Any]:
    """Record one event. Details hold ids and counts, never customer values or keys."""
    log = paths().audit_log
    with _locked(log):
        last = _last_entry(log)
        entry = {
            "seq": (last["seq"] + 1) if last else 1,
            "ts": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "principal": principal(),
            "action": action,
            "tenant": tenant,
            "purpose": purpose,
            "detail": detail,
            "prev": last["hash"] if last else GENESIS,
        }
        entry["hash"] = _entry_hash(entry)
        with open(log, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        _write_head(log, entry)
    return entry


def _write_head(log: Path, entry: dict[str, Any]) -> None:
    tmp = _head_file(log).with_suffix(".head.tmp")
    tmp.write_text(json.dumps({"seq": entry["seq"], "hash": entry["hash"]}))
    os.replace(tmp, _head_file(log))


def entries(log: Path | None = None) -> list[dict[str, Any]]:
    log = log or paths().audit_log
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class VerifyResult:
    entries: int
    last_hash: str


def verify(log: Path | None = None) -> VerifyResult:
    """Recompute the chain; raise AuditChainBroken naming the first bad entry."""
    log = log or paths().audit_log
    prev, expected_seq, count = GENESIS, 1, 0
    lines = log.read_text().splitlines() if log.exists() else []
    for lineno, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise AuditChainBroken(f"audit log line {lineno}: not valid JSON") from None
        where = f"audit log line {lineno} (seq {entry.get('seq')})"
        if entry.get("hash") != _entry_hash(entry):
            raise AuditChainBroken(f"{where}: content does not match its hash (edited)")
        if entry.get("prev") != prev:
            raise AuditChainBroken(f"{where}: previous-hash link broken (entry before it deleted, "
                                   "inserted or reordered)")
        if entry.get("seq") != expected_seq:
            raise AuditChainBroken(f"{where}: expected seq {expected_seq} (entries missing or "
                                   "reordered)")
        prev, expected_seq, count = entry["hash"], expected_seq + 1, count + 1
    _verify_head(log, count, prev)
    return VerifyResult(count, prev)


def _verify_head(log: Path, count: int, last_hash: str) -> None:
    head_file = _head_file(log)
    if not head_file.exists():
        if count:
            raise AuditChainBroken("audit head file is missing although the log has entries")
        return
    head = json.loads(head_file.read_text())
    if head["seq"] != count or head["hash"] != last_hash:
        raise AuditChainBroken(f"audit log ends at seq {count} but the head records seq "
                               f"{head['seq']}: entries after seq {count} were removed")
