"""The durable journal of tenant deletion requests: `request` appends and fsyncs a request to
`data/deletion/requests.jsonl` before anything else happens, and from then on `is_deleting(tenant)`
is true, so schedules and sensors skip the tenant (`deleting`, `pending`), and a request still
pending after `OVERDUE_DAYS` is `overdue` (a platform alert). The deletion's steps (`steps.py`)
journal their progress in the same file; `latest` replays it."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

from cleargro_pipeline import tenants
from cleargro_pipeline.durable import fsync_path
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.security import audit
from cleargro_pipeline.settings import paths

SOURCES = ("cli", "registry", "shopify_shop_redact")
OVERDUE_DAYS = 25


class DeletionError(CleargroError):
    """A deletion cannot proceed; the message names the tenant and the cause."""


class NoDeletionRequest(DeletionError):
    pass


# --- time ----------------------------------------------------------------------------------

def utc(moment: datetime | None = None) -> datetime:
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(timezone.utc)


def iso(moment: datetime) -> str:
    return utc(moment).isoformat(timespec="microseconds")


# --- the durable request store ---------------------------------------------------------------

@dataclass(frozen=True)
class DeletionRequest:
    request_id: str
    tenant: str
    reason: str
    source: str
    requested_at: datetime
    status: str = "pending"  # "pending" | "completed"
    completed_at: datetime | None = None
    certificate: Path | None = None

    def due_at(self, days: int = OVERDUE_DAYS) -> datetime:
        return self.requested_at + timedelta(days=days)


@dataclass
class RequestState:
    """One request and the progress of its deletion, replayed from the journal."""

    request: DeletionRequest
    items: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    inventoried: bool = False
    run_ids: list[str] = field(default_factory=list)
    credentials: list[str] = field(default_factory=list)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    certifying: dict[str, Any] | None = None

    def add_items(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            self.items.setdefault(item_key(item), item)

    def add_runs(self, run_ids: Iterable[str]) -> None:
        self.run_ids.extend(r for r in run_ids if r not in self.run_ids)


def item_key(item: dict[str, Any]) -> tuple[str, str, str]:
    """An inventoried file: the same path with other content is another item."""
    return item["root"], item["path"], item["sha256"]


def store_dir() -> Path:
    return paths().data / "deletion"


def _journal() -> Path:
    return store_dir() / "requests.jsonl"


def _journal_locked() -> AbstractContextManager[bool]:
    return file_lock(store_dir() / "requests.lock")


def _append_held(record: dict[str, Any]) -> None:
    """Append one journal line and make it durable (file and, when new, its folder).

    Callers hold `_journal_locked()` (flock is per open file: this function cannot take it
    itself inside `request`, which holds it across its check and its append)."""
    journal = _journal()
    journal.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    new = not journal.exists()
    line = json.dumps({"v": 1, **record}, sort_keys=True, separators=(",", ":")) + "\n"
    if not new and journal.stat().st_size:
        with open(journal, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a line torn by a crash: start on a fresh line
                line = "\n" + line
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        fsync_path(journal.parent)


def append(record: dict[str, Any]) -> None:
    """Append one journal line, holding the journal's lock."""
    with _journal_locked():
        _append_held(record)


def replay() -> dict[str, RequestState]:
    """Every request by id, in request order, rebuilt from the journal."""
    journal = _journal()
    states: dict[str, RequestState] = {}
    if not journal.exists():
        return states
    for line in journal.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # torn by a crash mid-append: the writer never went on, it took no effect
        event, rid = rec["event"], rec["request_id"]
        if event == "requested":
            states[rid] = RequestState(DeletionRequest(
                request_id=rid, tenant=rec["tenant"], reason=rec["reason"], source=rec["source"],
                requested_at=datetime.fromisoformat(rec["requested_at"])))
            continue
        state = states[rid]
        if event == "inventory":
            state.inventoried = True
            state.add_items(rec["items"])
            state.add_runs(rec.get("run_ids") or [])
        elif event == "items_added":
            state.add_items(rec["items"])
        elif event == "runs_found":
            state.add_runs(rec["run_ids"])
        elif event == "credentials":
            state.credentials.extend(n for n in rec["names"] if n not in state.credentials)
        elif event == "step":
            state.steps[rec["step"]] = {"at": rec["at"], **rec.get("detail", {})}
        elif event == "certifying":
            state.certifying = rec
        elif event == "completed":
            state.request = DeletionRequest(
                **{**state.request.__dict__, "status": "completed",
                   "completed_at": datetime.fromisoformat(rec["completed_at"]),
                   "certificate": paths().data / rec["certificate"]})
    return states


def latest(tenant: str, states: dict[str, RequestState] | None = None) -> RequestState | None:
    """The tenant's most recent request, if any."""
    found = [s for s in (states if states is not None else replay()).values()
             if s.request.tenant == tenant]
    return found[-1] if found else None


def request(tenant: str, reason: str, source: str, *, now: datetime | None = None) -> DeletionRequest:
    """Record a deletion request durably (before anything else), or return the pending one.

    A tenant already pending gets its existing request back (the reason may then be empty:
    `cleargro delete --tenant T --now`); a tenant already deleted gets its completed request
    back (webhooks retry). The reason is kept in the store and the
    certificate and must not quote customer data; the audit log records its hash only.
    """
    tenants.validate_name(tenant)
    if source not in SOURCES:
        raise ValueError(f"unknown deletion source {source!r}; sources are {', '.join(SOURCES)}")
    with _journal_locked():
        last = latest(tenant)
        if last and (last.request.status == "pending" or not tenants.exists(tenant)):
            return last.request
        if not tenants.exists(tenant):
            tenants.get(tenant)  # raises UnknownTenant with the usual hint
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"a deletion request for tenant '{tenant}' needs a reason")
        req = DeletionRequest(request_id=uuid.uuid4().hex, tenant=tenant, reason=reason.strip(),
                              source=source, requested_at=utc(now))
        _append_held({"event": "requested", "request_id": req.request_id, "tenant": tenant,
                      "reason": req.reason, "source": source,
                      "requested_at": iso(req.requested_at), "at": iso(utc())})
    audit.append("deletion_requested", tenant=tenant, request_id=req.request_id, source=source,
                 reason_sha256=hashlib.sha256(req.reason.encode()).hexdigest())
    return req


def status(tenant: str) -> DeletionRequest | None:
    """The tenant's latest deletion request (pending or completed), if any."""
    last = latest(tenant)
    return last.request if last else None


def is_deleting(tenant: str) -> bool:
    """True from the moment a request is recorded until its certificate is written."""
    last = latest(tenant)
    return bool(last and last.request.status == "pending")


def deleting() -> set[str]:
    """Tenants with a pending deletion (for schedules and sensors to skip)."""
    return {r.tenant for r in pending()}


def pending() -> list[DeletionRequest]:
    return [s.request for s in replay().values() if s.request.status == "pending"]


def overdue(now: datetime | None = None, days: int = OVERDUE_DAYS) -> list[DeletionRequest]:
    """Pending requests older than `days` (the `deletion_overdue` platform alert)."""
    now = utc(now)
    return [r for r in pending() if now - r.requested_at > timedelta(days=days)]
