"""Deleting a tenant, with a signed certificate as proof (crypto-shredding first).

A request (`cleargro delete`, a cancellation in the registry, Shopify's `shop/redact`)
is appended and fsynced to `data/deletion/requests.jsonl` before anything else happens;
from then on `is_deleting(tenant)` is true and schedules and sensors skip the tenant.

`run(tenant)` then works through these steps, each journalled in the same file, written to
the audit log (`deletion_step`) and listed in the certificate:

1. `stop_runs` (with a Dagster instance): queued and running runs of the tenant are cancelled;
   the step then waits for the tenant's writer lock, so no load or dbt run is mid-write.
2. `inventory`: every file to remove, with its size and SHA-256: the tenant's folder (the
   warehouse, in which reports live, and anything else there), `data/exports/<tenant>/` and
   the files its manifests list, plaintext report exports the audit log recorded, backups in
   `data/backups/<tenant>/`, dlt/dbt working folders in `data/work/<tenant>/`, the registry
   folder (tenant.json, keys.json, secrets.json) and, with an instance, the compute logs,
   event-log shards and I/O-manager outputs of the tenant's runs. The first attempt's
   inventory is journalled, so items a crashed attempt already deleted are still certified.
3. `destroy_keys`: keys.json (the wrapped data and pseudonym keys) is overwritten with random
   bytes, fsynced and unlinked. From that moment every copy of the warehouse, backups
   included, is unreadable: the keys were random, never derived from the master key.
4. `revoke_credentials`: each stored credential goes through `revoke(name, value)` (by
   default `disconnect.provider_revoker()`: OAuth tokens of GA4 and Google Ads are revoked at
   Google; a failure stops the run, which retries), then `secret_store.delete_scope(tenant)`.
   Keys are already destroyed by then: a provider that is down delays the certificate, not
   the crypto-shredding.
5. `delete_files`: every inventoried folder and file is removed (files that appeared since
   the inventory are hashed and added first).
6. `delete_dagster` (with an instance): the tenant's runs with their event logs and compute
   logs, and its `tenants` dynamic partition.
7. `unregister`: the registry folder is gone; `tenants.get` raises UnknownTenant.

The certificate (`data/certificates/<tenant>-<completed>.json`, outside every tenant folder)
is signed with Ed25519; the signing key is sealed in the secret store (scope `platform`) and
its public key is written beside the certificates as `signing_key.pub` (PEM).
`verify_certificate` fails on any edited byte: the file must be exactly the canonical
serialisation of what it holds, and the signature covers the canonical certificate body.

Every step is idempotent: a `run` that died midway is finished by running it again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cleargro_pipeline import tenants
from cleargro_pipeline.durable import fsync_path, write_atomic
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.security import audit, keys, secret_store
from cleargro_pipeline.settings import paths

if TYPE_CHECKING:
    import dagster as dg

SOURCES = ("cli", "registry", "shopify_shop_redact")
OVERDUE_DAYS = 25
TENANT_TAG = "cleargro/tenant"  # = orchestration.jobs.TENANT_TAG (kept import-free of Dagster)
PARTITIONS = "tenants"  # = orchestration.partitions.tenant_partitions.name
# Runs of a tenant: our tag, and Dagster's partition tags (single- and multi-dimensional).
RUN_TAGS = (TENANT_TAG, "dagster/partition", "dagster/partition/tenant", "dagster/partition/tenants")
SIGNING_KEY_NAME = "deletion_certificate_signing_key"
CERTIFICATE_FORMAT = "cleargro-deletion-certificate/1"
LOCK_TIMEOUT_S = float(os.environ.get("CLEARGRO_LOCK_TIMEOUT_S", "1800"))  # = warehouse's
_IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
_CHUNK = 1 << 20


class DeletionError(CleargroError):
    """A deletion cannot proceed; the message names the tenant and the cause."""


class NoDeletionRequest(DeletionError):
    pass


class CertificateInvalid(CleargroError):
    """A certificate does not verify: edited, unsigned, or signed by another key."""


# --- time ----------------------------------------------------------------------------------

def _utc(moment: datetime | None = None) -> datetime:
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(timezone.utc)


def _iso(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="microseconds")


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
class _State:
    """One request replayed from the journal."""

    request: DeletionRequest
    items: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    inventoried: bool = False
    run_ids: list[str] = field(default_factory=list)
    credentials: list[str] = field(default_factory=list)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    certifying: dict[str, Any] | None = None

    def add_items(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            self.items.setdefault(_item_key(item), item)

    def add_runs(self, run_ids: Iterable[str]) -> None:
        self.run_ids.extend(r for r in run_ids if r not in self.run_ids)


def _store_dir() -> Path:
    return paths().data / "deletion"


def _journal() -> Path:
    return _store_dir() / "requests.jsonl"


def certificates_dir() -> Path:
    return paths().data / "certificates"


def signing_public_key_path() -> Path:
    return certificates_dir() / "signing_key.pub"


def _journal_locked() -> AbstractContextManager[bool]:
    return file_lock(_store_dir() / "requests.lock")


def _append(record: dict[str, Any]) -> None:
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


def _append_locked(record: dict[str, Any]) -> None:
    with _journal_locked():
        _append(record)


def _replay() -> dict[str, _State]:
    """Every request by id, in request order, rebuilt from the journal."""
    journal = _journal()
    states: dict[str, _State] = {}
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
            states[rid] = _State(DeletionRequest(
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


def _latest(tenant: str, states: dict[str, _State] | None = None) -> _State | None:
    found = [s for s in (states if states is not None else _replay()).values()
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
        latest = _latest(tenant)
        if latest and (latest.request.status == "pending" or not tenants.exists(tenant)):
            return latest.request
        if not tenants.exists(tenant):
            tenants.get(tenant)  # raises UnknownTenant with the usual hint
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"a deletion request for tenant '{tenant}' needs a reason")
        req = DeletionRequest(request_id=uuid.uuid4().hex, tenant=tenant, reason=reason.strip(),
                              source=source, requested_at=_utc(now))
        _append({"event": "requested", "request_id": req.request_id, "tenant": tenant,
                 "reason": req.reason, "source": source, "requested_at": _iso(req.requested_at),
                 "at": _iso(_utc())})
    audit.append("deletion_requested", tenant=tenant, request_id=req.request_id, source=source,
                 reason_sha256=hashlib.sha256(req.reason.encode()).hexdigest())
    return req


def status(tenant: str) -> DeletionRequest | None:
    """The tenant's latest deletion request (pending or completed), if any."""
    latest = _latest(tenant)
    return latest.request if latest else None


def is_deleting(tenant: str) -> bool:
    """True from the moment a request is recorded until its certificate is written."""
    latest = _latest(tenant)
    return bool(latest and latest.request.status == "pending")


def deleting() -> set[str]:
    """Tenants with a pending deletion (for schedules and sensors to skip)."""
    return {r.tenant for r in pending()}


def pending() -> list[DeletionRequest]:
    return [s.request for s in _replay().values() if s.request.status == "pending"]


def overdue(now: datetime | None = None, days: int = OVERDUE_DAYS) -> list[DeletionRequest]:
    """Pending requests older than `days` (the `deletion_overdue` platform alert)."""
    now = _utc(now)
    return [r for r in pending() if now - r.requested_at > timedelta(days=days)]


# --- inventory -------------------------------------------------------------------------------

def _item_key(item: dict[str, Any]) -> tuple[str, str, str]:
    return item["root"], item["path"], item["sha256"]


def _sha256(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _label(path: Path, roots: dict[str, Path]) -> tuple[str, str]:
    """(root name, path relative to it); absolute for files outside every known root."""
    for name, root in roots.items():
        try:
            return name, path.relative_to(root).as_posix()
        except ValueError:
            continue
    return "absolute", str(path)


def _item(path: Path, kind: str, roots: dict[str, Path]) -> dict[str, Any] | None:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        size, digest = _sha256(path)
    except FileNotFoundError:
        return None
    root, rel = _label(path, roots)
    return {"root": root, "path": rel, "kind": kind, "bytes": size, "sha256": digest}


def _files_under(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return [folder] if folder.is_file() else []
    return sorted(Path(d, n) for d, _, names in os.walk(folder) for n in names)


@dataclass(frozen=True)
class _Target:
    """Something to remove: a folder (all of it) or one file, and the kind its files get."""

    path: Path
    kind: str
    folder: bool


def _registry_kind(name: str) -> str:
    return {"tenant.json": "registry_config", "keys.json": "wrapped_keys",
            "secrets.json": "sealed_credentials"}.get(name, "registry_file")


def _exports_dir(tenant: str) -> Path:
    return paths().data / "exports" / tenant


def _backups_dir(tenant: str) -> Path:
    return paths().data / "backups" / tenant


def _listed_exports(tenant: str) -> tuple[list[Path], list[dict[str, Any]]]:
    """Files that the export registry in data/exports/<tenant>/ and the audit log list.

    A registry entry (`export.py`: `<export_id>.json`) is `{"path": ..., "sha256": ...}`;
    `{"files": [{"path", "sha256"}, ...]}` and lists of such entries are read too. Exports the
    audit log recorded (`export_created`, plaintext `report_export`) count as well. A listed
    file is removed only while it is still exactly what was exported (same SHA-256; a PDF
    report export carries no hash of its own and is reported, not touched), so a file someone
    has since put at that path is never deleted.
    """
    found: list[Path] = []
    kept: list[dict[str, Any]] = []
    folder = _exports_dir(tenant)
    for manifest in _files_under(folder):
        if manifest.suffix != ".json":
            continue
        try:
            body = json.loads(manifest.read_text())
        except (ValueError, UnicodeDecodeError, OSError):
            continue
        if isinstance(body, dict):
            entries = body.get("files", [body] if "path" in body else [])
        else:
            entries = body
        for entry in entries if isinstance(entries, list) else []:
            text = entry.get("path") if isinstance(entry, dict) else entry
            if not isinstance(text, str):
                continue
            path = Path(text) if Path(text).is_absolute() else manifest.parent / text
            expected = entry.get("sha256") if isinstance(entry, dict) else None
            _consider(path, expected, found, kept, "listed in an export manifest")
    for entry in audit.entries():
        action, detail = entry.get("action"), entry.get("detail", {})
        if entry.get("tenant") != tenant or not detail.get("path"):
            continue
        if action == "export_created":
            _consider(Path(detail["path"]), detail.get("sha256"), found, kept, "data export")
        elif action == "report_export":
            html = detail.get("format") == "html"
            _consider(Path(detail["path"]), detail.get("sha256") if html else None, found, kept,
                      "report export", unverifiable=not html)
    return found, kept


def _consider(path: Path, expected: str | None, found: list[Path], kept: list[dict[str, Any]],
              origin: str, unverifiable: bool = False) -> None:
    path = Path(os.path.abspath(path))
    if path in found or any(k["path"] == str(path) for k in kept):
        return
    if not path.is_file() or path.is_symlink():
        return  # gone (or removed by an earlier attempt, which certified it)
    if unverifiable:
        kept.append({"path": str(path), "origin": origin,
                     "state": "present; cannot prove it is the export (not HTML), left in place"})
        return
    if not expected and not unverifiable:
        kept.append({"path": str(path), "origin": origin,
                     "state": "present; listed without a SHA-256 to prove it, left in place"})
        return
    if expected and _sha256(path)[1] != expected:
        kept.append({"path": str(path), "origin": origin,
                     "state": "present but changed since the export, left in place"})
        return
    found.append(path)


def _targets(tenant: str) -> tuple[list[_Target], list[dict[str, Any]]]:
    p = paths()
    listed, kept = _listed_exports(tenant)
    targets = [
        _Target(p.tenant_dir(tenant), "tenant_folder", True),
        _Target(_exports_dir(tenant), "export", True),
        *[_Target(path, "export", False) for path in listed],
        _Target(_backups_dir(tenant), "backup", True),
        _Target(p.tenant_work(tenant), "work", True),
        _Target(p.registry / tenant, "registry", True),
    ]
    return targets, kept


def _target_items(targets: Iterable[_Target], roots: dict[str, Path],
                  tenant: str) -> list[dict[str, Any]]:
    items = []
    warehouse_file = paths().warehouse(tenant)
    for target in targets:
        for path in _files_under(target.path):
            kind = target.kind
            if path == warehouse_file:
                kind = "warehouse"
            elif target.kind == "registry":
                kind = _registry_kind(path.name)
            if (item := _item(path, kind, roots)) is not None:
                items.append(item)
    return items


def _roots(instance: "dg.DagsterInstance | None") -> dict[str, Path]:
    roots = {"data": paths().data}
    if instance is not None:
        roots["dagster_home"] = Path(instance.root_directory).resolve()
    return roots


# --- keys, files ------------------------------------------------------------------------------

def _shred(path: Path) -> bool:
    """Overwrite a file with random bytes, fsync, unlink, fsync its folder. False if absent."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        written = 0
        while written < size:
            written += os.write(fd, os.urandom(min(_CHUNK, size - written)))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    fsync_path(path.parent)
    return True


def _destroy_keys(tenant: str) -> bool:
    key_file = keys._key_file(tenant)
    destroyed = _shred(key_file)
    _shred(key_file.with_suffix(".tmp"))  # a write of keys.json interrupted before its rename
    return destroyed


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        def fail(function, failed_path, excinfo):  # noqa: ARG001
            error = excinfo[1]
            if not isinstance(error, FileNotFoundError):
                raise DeletionError(f"cannot remove {failed_path} ({type(error).__name__})")
        shutil.rmtree(path, onerror=fail)


def _writer_lock(tenant: str) -> AbstractContextManager[bool]:
    """Wait for the tenant's writers and readers (the warehouse lock), without creating it."""
    return file_lock(paths().tenant_dir(tenant) / "warehouse.lock", timeout=LOCK_TIMEOUT_S,
                     create=False, on_timeout=lambda: DeletionError(
                         f"tenant '{tenant}': warehouse still in use after "
                         f"{LOCK_TIMEOUT_S:.0f} s; deletion will retry"))


# --- Dagster ---------------------------------------------------------------------------------

def tenant_run_ids(instance: "dg.DagsterInstance", tenant: str,
                   exclude: Iterable[str] = ()) -> list[str]:
    """Ids of the runs that belong to the tenant (our tag or Dagster's partition tags)."""
    import dagster as dg

    excluded, found = set(exclude), []
    for tag in RUN_TAGS:
        for run_id in instance.get_run_ids(dg.RunsFilter(tags={tag: tenant})):
            if run_id not in excluded and run_id not in found:
                found.append(run_id)
    return found


def stop_tenant_runs(instance: "dg.DagsterInstance", tenant: str,
                     exclude: Iterable[str] = ()) -> list[str]:
    """Cancel the tenant's queued runs and ask running ones to terminate; returns their ids."""
    import dagster as dg

    stopped = []
    excluded = set(exclude)
    statuses = [dg.DagsterRunStatus[s] for s in _IN_FLIGHT]
    for tag in RUN_TAGS:
        for run in instance.get_runs(dg.RunsFilter(tags={tag: tenant}, statuses=statuses)):
            if run.run_id in excluded or run.run_id in stopped:
                continue
            try:
                instance.run_coordinator.cancel_run(run.run_id)
            except Exception:  # noqa: BLE001 - a launcher that cannot terminate: the lock waits
                pass
            stopped.append(run.run_id)
    return stopped


def _dagster_files(instance: "dg.DagsterInstance", tenant: str,
                   run_ids: Iterable[str]) -> list[tuple[Path, str]]:
    """Files of the tenant's runs: compute logs, event-log shards, I/O-manager outputs."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager

    found: list[tuple[Path, str]] = []
    logs = instance.compute_log_manager
    events = instance.event_log_storage
    for run_id in run_ids:
        if isinstance(logs, LocalComputeLogManager):
            found += [(p, "dagster_compute_log") for p in _files_under(Path(logs._base_dir) / run_id)]
        if isinstance(events, SqliteEventLogStorage):
            shard = Path(events.path_for_shard(run_id))
            found += [(Path(f"{shard}{suffix}"), "dagster_event_log") for suffix in ("", "-wal", "-shm")
                      if Path(f"{shard}{suffix}").is_file()]
    # The filesystem I/O manager keeps an output per partition: <asset>/<tenant> for the
    # tenant dimension alone, <asset>/<other dimension>/<tenant> for multi-partitions
    # (dimensions in name order, "tenant" last). Files only: a folder of that name is another
    # dimension's value.
    storage = Path(instance.storage_directory())
    if storage.is_dir():
        for dirpath, dirnames, names in os.walk(storage):
            dirnames[:] = [d for d in dirnames if d != "compute_logs"]
            found += [(Path(dirpath, n), "dagster_output") for n in names
                      if Path(n).stem == tenant and Path(dirpath) != storage]
    return found


def _delete_dagster(instance: "dg.DagsterInstance", tenant: str, run_ids: list[str]) -> int:
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    logs, events = instance.compute_log_manager, instance.event_log_storage
    for path, kind in _dagster_files(instance, tenant, run_ids):
        if kind == "dagster_output":
            path.unlink(missing_ok=True)
    import dagster as dg

    # Assets these runs materialized: their cached partition status (which lists the tenant's
    # partition) is dropped below and rebuilt by Dagster from the events that remain.
    touched = {event.dagster_event.asset_key for run_id in run_ids
               if instance.get_run_record_by_id(run_id) is not None
               for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
               if event.dagster_event is not None}
    deleted = 0
    for run_id in run_ids:
        try:
            logs.delete_logs(prefix=[run_id])
        except NotImplementedError:
            pass
        if instance.get_run_record_by_id(run_id) is not None:
            instance.delete_run(run_id)  # the run and its event log
            deleted += 1
        if isinstance(events, SqliteEventLogStorage):
            shard = events.path_for_shard(run_id)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{shard}{suffix}").unlink(missing_ok=True)
    if touched:
        instance.wipe_asset_cached_status(sorted(touched, key=lambda k: k.to_string()))
    instance.delete_dynamic_partition(PARTITIONS, tenant)
    return deleted


# --- signing ---------------------------------------------------------------------------------

def _fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def signing_key() -> Ed25519PrivateKey:
    """The certificate signing key: created on first use, sealed in the secret store."""
    folder = certificates_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(_store_dir() / "signing.lock"):
        if SIGNING_KEY_NAME in secret_store.names(secret_store.PLATFORM):
            pem = secret_store.get(secret_store.PLATFORM, SIGNING_KEY_NAME,
                                   purpose="deletion_certificate")
            private = serialization.load_pem_private_key(pem.encode(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise DeletionError(f"platform secret {SIGNING_KEY_NAME} is not an Ed25519 key")
        else:
            private = Ed25519PrivateKey.generate()
            pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
            secret_store.put(secret_store.PLATFORM, SIGNING_KEY_NAME, pem)
            audit.append("deletion_signing_key_created",
                         fingerprint=_fingerprint(private.public_key()))
        published = _public_pem(private.public_key())
        target = signing_public_key_path()
        if not target.exists():
            write_atomic(target, published, mode=0o644)
        elif target.read_bytes() != published:
            raise DeletionError(f"{target} does not match the sealed signing key; refusing to sign "
                                "(restore the published key or rotate it deliberately)")
    return private


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _file_bytes(wrapper: dict[str, Any]) -> bytes:
    return (json.dumps(wrapper, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode()


def _b64decode_strict(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise CertificateInvalid(f"certificate {what} is missing or not text")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise CertificateInvalid(f"certificate {what} is not valid base64 (edited)") from None
    if base64.b64encode(raw).decode() != text:
        raise CertificateInvalid(f"certificate {what} is not canonical base64 (edited)")
    return raw


@dataclass(frozen=True)
class Certificate:
    path: Path
    body: dict[str, Any]
    public_key_fingerprint: str

    @property
    def tenant(self) -> str:
        return self.body["tenant"]

    @property
    def completed_at(self) -> str:
        return self.body["completed_at"]

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.body["items"]


def verify_certificate(path: Path | str, public_key_path: Path | str | None = None) -> Certificate:
    """Check a certificate against the public key (default: data/certificates/signing_key.pub).

    Raises CertificateInvalid on any edited byte, a missing signature or another key.
    """
    path = Path(path)
    key_file = Path(public_key_path) if public_key_path else signing_public_key_path()
    try:
        trusted = serialization.load_pem_public_key(key_file.read_bytes())
    except FileNotFoundError:
        raise CertificateInvalid(f"no public key at {key_file}; pass the signer's public key") from None
    except ValueError:
        raise CertificateInvalid(f"{key_file} is not a PEM public key") from None
    if not isinstance(trusted, Ed25519PublicKey):
        raise CertificateInvalid(f"{key_file} is not an Ed25519 public key")
    raw = path.read_bytes()
    try:
        wrapper = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CertificateInvalid(f"{path} is not valid JSON (edited or truncated)") from None
    if not isinstance(wrapper, dict) or not isinstance(wrapper.get("certificate"), dict):
        raise CertificateInvalid(f"{path} holds no certificate")
    if "signature" not in wrapper:
        raise CertificateInvalid(f"{path} has no signature")
    if set(wrapper) != {"certificate", "signature", "public_key"}:
        raise CertificateInvalid(f"{path} has unexpected or missing fields (edited)")
    if raw != _file_bytes(wrapper):
        raise CertificateInvalid(f"{path} is not byte-for-byte the form it was signed in (edited)")
    signature = _b64decode_strict(wrapper["signature"], "signature")
    embedded = _b64decode_strict(wrapper["public_key"], "public key")
    expected = _fingerprint(trusted)
    raw_trusted = trusted.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    body = wrapper["certificate"]
    claimed = (body.get("signer") or {}).get("public_key_fingerprint")
    if embedded != raw_trusted or claimed != expected:
        raise CertificateInvalid(f"{path} was signed by a different key ({claimed}), not by "
                                 f"{expected} from {key_file}")
    try:
        trusted.verify(signature, _canonical(body))
    except InvalidSignature:
        raise CertificateInvalid(f"{path}: signature does not match its content (edited)") from None
    return Certificate(path, body, expected)


def _write_certificate(target: Path, body: dict[str, Any], private: Ed25519PrivateKey) -> None:
    public_raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
    wrapper = {"certificate": body,
               "signature": base64.b64encode(private.sign(_canonical(body))).decode(),
               "public_key": base64.b64encode(public_raw).decode()}
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, _file_bytes(wrapper), mode=0o644)


# --- the job ----------------------------------------------------------------------------------

class _Run:
    """One attempt at a request: journals and audits each step."""

    def __init__(self, state: _State, clock: Callable[[], datetime]):
        self.state, self.clock = state, clock
        self.tenant, self.rid = state.request.tenant, state.request.request_id

    def journal(self, event: str, **record: Any) -> None:
        _append_locked({"event": event, "request_id": self.rid, "tenant": self.tenant,
                 "at": _iso(self.clock()), **record})

    def step(self, name: str, **detail: Any) -> dict[str, Any]:
        """Record a finished step (once: a re-run keeps the first record)."""
        if name not in self.state.steps:
            at = _iso(self.clock())
            _append_locked({"event": "step", "request_id": self.rid, "tenant": self.tenant,
                            "step": name, "at": at, "detail": detail})
            self.state.steps[name] = {"at": at, **detail}
            audit.append("deletion_step", tenant=self.tenant, request_id=self.rid, step=name,
                         **detail)
        return self.state.steps[name]

    def add_items(self, items: list[dict[str, Any]]) -> None:
        new = [i for i in items if _item_key(i) not in self.state.items]
        if new:
            self.journal("items_added", items=new)
            self.state.add_items(new)


def run(tenant: str, *, instance: "dg.DagsterInstance | None" = None, now: datetime | None = None,
        revoke: Callable[[str, str], str | None] | None = None,
        current_run_id: str | None = None) -> Path:
    """Carry out the tenant's pending deletion request; returns the certificate's path.

    `instance`: the Dagster instance whose runs, logs and partition of the tenant go too
    (without it those are left and the certificate says so). `now`: a fixed clock for every
    time recorded (tests). `revoke(name, value)`: called for each stored credential before it
    is deleted (default: `disconnect.provider_revoker()`, OAuth tokens revoked at Google; a
    credential it returns a value for counts as revoked at the provider); raising stops the
    run, which retries later.
    `current_run_id`: the Dagster run carrying out the deletion, which is kept.
    A completed request returns its certificate; an interrupted one is finished.
    """
    tenants.validate_name(tenant)
    if revoke is None:
        from cleargro_pipeline.controls.disconnect import provider_revoker

        revoke = provider_revoker()
    clock = (lambda: _utc(now)) if now is not None else (lambda: _utc())
    with file_lock(_store_dir() / "locks" / f"{tenant}.lock"):
        latest = _latest(tenant)
        if latest is None:
            raise NoDeletionRequest(f"tenant '{tenant}' has no deletion request; record one first "
                                    f"(`cleargro delete --tenant {tenant} --reason ...`)")
        if latest.request.status == "completed":
            return latest.request.certificate
        attempt = _Run(latest, clock)
        exclude = [current_run_id] if current_run_id else []
        roots = _roots(instance)

        if instance is not None:
            stopped = stop_tenant_runs(instance, tenant, exclude)
            attempt.step("stop_runs", runs_stopped=len(stopped))

        with _writer_lock(tenant):
            targets, kept = _targets(tenant)
            if not latest.inventoried:
                items = _target_items(targets, roots, tenant)
                run_ids = tenant_run_ids(instance, tenant, exclude) if instance is not None else []
                if instance is not None:
                    items += [i for p, kind in _dagster_files(instance, tenant, run_ids)
                              if (i := _item(p, kind, roots)) is not None]
                attempt.journal("inventory", items=items, run_ids=run_ids)
                latest.inventoried = True
                latest.add_items(items)
                latest.add_runs(run_ids)
            attempt.step("inventory", items=len(latest.items),
                         bytes=sum(i["bytes"] for i in latest.items.values()),
                         runs=len(latest.run_ids), external_exports_kept=len(kept))

            destroyed = _destroy_keys(tenant)
            attempt.step("destroy_keys", kinds=list(keys.KEY_KINDS), key_file_found=destroyed)
            _check_keys_gone(tenant)

            names = secret_store.names(tenant)
            at_provider: list[str] = []
            if names:
                new = [n for n in names if n not in latest.credentials]
                if new:  # journalled first: a crash after delete_scope still certifies them
                    attempt.journal("credentials", names=new)
                    latest.credentials.extend(new)
                at_provider = [name for name in names if revoke(
                    name, secret_store.get(tenant, name, purpose="deletion_revoke"))]
                secret_store.delete_scope(tenant)
            attempt.step("revoke_credentials", names=sorted(latest.credentials),
                         revoked_at_provider=sorted(at_provider))

            attempt.add_items(_target_items(targets, roots, tenant))  # appeared since inventory
            for target in targets:
                _remove(target.path)
            attempt.step("delete_files", items=len(latest.items),
                         bytes=sum(i["bytes"] for i in latest.items.values()))

        if instance is not None:
            late = [r for r in tenant_run_ids(instance, tenant, exclude) if r not in latest.run_ids]
            if late:  # runs that started after the inventory (e.g. before a crash)
                attempt.add_items([i for p, kind in _dagster_files(instance, tenant, late)
                                   if (i := _item(p, kind, roots)) is not None])
                attempt.journal("runs_found", run_ids=late)
                latest.add_runs(late)
            deleted = _delete_dagster(instance, tenant, latest.run_ids)
            attempt.step("delete_dagster", runs=len(latest.run_ids), runs_deleted_now=deleted,
                         partition=PARTITIONS)
        else:
            attempt.step("delete_dagster", skipped="no Dagster instance given")

        _remove(paths().registry / tenant)  # lock files the steps above may have left
        _remove(paths().tenant_dir(tenant))
        if tenants.exists(tenant):
            raise DeletionError(f"tenant '{tenant}' is still registered after deletion")
        attempt.step("unregister")

        return _certify(attempt, kept)


def _check_keys_gone(tenant: str) -> None:
    for kind in keys.KEY_KINDS:
        try:
            keys.unwrap_tenant_key(tenant, kind, purpose="deletion_check")
        except keys.KeyUnavailable:
            continue
        raise DeletionError(f"tenant '{tenant}': the {kind} key still unwraps after destruction")


def _certify(attempt: _Run, kept: list[dict[str, Any]]) -> Path:
    state, tenant = attempt.state, attempt.tenant
    if state.certifying is None:
        completed = attempt.clock()
        name = f"{tenant}-{completed.strftime('%Y%m%dT%H%M%S%fZ')}.json"
        attempt.journal("certifying", completed_at=_iso(completed),
                        certificate=f"certificates/{name}", external_exports_kept=kept)
        state.certifying = {"completed_at": _iso(completed), "certificate": f"certificates/{name}",
                            "external_exports_kept": kept}
    certifying = state.certifying
    target = paths().data / certifying["certificate"]
    private = signing_key()
    body = _certificate_body(state, certifying, private.public_key())
    if not target.exists():
        _write_certificate(target, body, private)
    else:
        verify_certificate(target)  # an earlier attempt wrote it: it must still verify
    attempt.journal("completed", completed_at=certifying["completed_at"],
                    certificate=certifying["certificate"])
    digest = _sha256(target)[1]
    audit.append("deletion_completed", tenant=tenant, request_id=attempt.rid,
                 certificate=certifying["certificate"], certificate_sha256=digest,
                 items=len(state.items), runs_deleted=len(state.run_ids))
    return target


def _certificate_body(state: _State, certifying: dict[str, Any],
                      public_key: Ed25519PublicKey) -> dict[str, Any]:
    req = state.request
    items = sorted(state.items.values(), key=lambda i: (i["root"], i["path"], i["sha256"]))
    dagster = state.steps.get("delete_dagster", {})
    return {
        "format": CERTIFICATE_FORMAT,
        "request_id": req.request_id,
        "tenant": req.tenant,
        "reason": req.reason,
        "source": req.source,
        "requested_at": _iso(req.requested_at),
        "completed_at": certifying["completed_at"],
        "keys_destroyed": list(keys.KEY_KINDS),
        "keys_destroyed_at": state.steps["destroy_keys"]["at"],
        "items": items,
        "totals": {"items": len(items), "bytes": sum(i["bytes"] for i in items)},
        "backups_rendered_unreadable": [
            {"id": Path(i["path"]).stem, "path": i["path"], "bytes": i["bytes"],
             "sha256": i["sha256"]}
            for i in items if i["kind"] == "backup" and not i["path"].endswith(".json")],
        "credentials_revoked": sorted(state.credentials),
        "credentials_revoked_at_provider":
            state.steps["revoke_credentials"].get("revoked_at_provider", []),
        "external_exports_not_removed": certifying.get("external_exports_kept", []),
        "dagster": None if "skipped" in dagster else {
            "runs_deleted": len(state.run_ids), "run_ids": sorted(state.run_ids),
            "partition_deleted": f"{PARTITIONS}/{req.tenant}"},
        "runs_deleted": None if "skipped" in dagster else len(state.run_ids),
        "steps": [{"step": name, **detail} for name, detail in state.steps.items()],
        "signer": {"algorithm": "Ed25519", "public_key_fingerprint": _fingerprint(public_key)},
    }
