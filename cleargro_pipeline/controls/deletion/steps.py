"""Carrying out a tenant's deletion: `run(tenant)` works through the journalled steps (stop the
tenant's Dagster runs, inventory, destroy its keys, revoke its credentials, delete its files, its
Dagster runs and partition, unregister it), each recorded once in the request journal and the
audit log, so a run that died midway is finished by running it again; then it signs the
certificate that lists everything removed."""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.controls.deletion import certificate, requests
from cleargro_pipeline.controls.deletion.requests import (
    DeletionError,
    NoDeletionRequest,
    RequestState,
    item_key,
    iso,
    store_dir,
    utc,
)
from cleargro_pipeline.controls.disconnect import provider_revoker
from cleargro_pipeline.durable import sha256_of
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.security import audit, keys, secret_store
from cleargro_pipeline.settings import paths

if TYPE_CHECKING:  # Dagster is imported where it is used: the journal's users never load it
    import dagster as dg

PARTITIONS = "tenants"  # = orchestration.partitions.tenant_partitions.name
# Runs of a tenant: our tag, and Dagster's partition tags (single- and multi-dimensional).
RUN_TAGS = (tenants.RUN_TAG, "dagster/partition", "dagster/partition/tenant",
            "dagster/partition/tenants")
_IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")


# --- inventory -------------------------------------------------------------------------------

def _sha256(path: Path) -> tuple[int, str]:
    with open(path, "rb") as f:
        return sha256_of(f)


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


# --- removal ----------------------------------------------------------------------------------

def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        def fail(function, failed_path, excinfo):  # noqa: ARG001
            error = excinfo[1]
            if not isinstance(error, FileNotFoundError):
                raise DeletionError(f"cannot remove {failed_path} ({type(error).__name__})")
        shutil.rmtree(path, onerror=fail)


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
    # cleargro's event log storage (orchestration.event_log) keeps the index's write-ahead log
    # between writes: the deleted rows' old page images are in it until it is emptied.
    truncate_index_log = getattr(events, "truncate_index_log", None)
    if truncate_index_log is not None:
        truncate_index_log()
    return deleted


# --- the job ----------------------------------------------------------------------------------

class _Run:
    """One attempt at a request: journals and audits each step."""

    def __init__(self, state: RequestState, clock: Callable[[], datetime]):
        self.state, self.clock = state, clock
        self.tenant, self.rid = state.request.tenant, state.request.request_id

    def journal(self, event: str, **record: Any) -> None:
        requests.append({"event": event, "request_id": self.rid, "tenant": self.tenant,
                         "at": iso(self.clock()), **record})

    def step(self, name: str, **detail: Any) -> dict[str, Any]:
        """Record a finished step (once: a re-run keeps the first record)."""
        if name not in self.state.steps:
            at = iso(self.clock())
            requests.append({"event": "step", "request_id": self.rid, "tenant": self.tenant,
                             "step": name, "at": at, "detail": detail})
            self.state.steps[name] = {"at": at, **detail}
            audit.append("deletion_step", tenant=self.tenant, request_id=self.rid, step=name,
                         **detail)
        return self.state.steps[name]

    def add_items(self, items: list[dict[str, Any]]) -> None:
        new = [i for i in items if item_key(i) not in self.state.items]
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
        revoke = provider_revoker()
    clock = (lambda: utc(now)) if now is not None else (lambda: utc())
    lock = store_dir() / "locks" / f"{tenant}.lock"
    with file_lock(lock):
        state = requests.latest(tenant)
        if state is None:
            raise NoDeletionRequest(f"tenant '{tenant}' has no deletion request; record one first "
                                    f"(`cleargro delete --tenant {tenant} --reason ...`)")
        if state.request.status == "completed":
            issued = state.request.certificate
        else:
            issued = _carry_out(_Run(state, clock), instance, revoke, current_run_id)
        # The lock file names the tenant, so it goes too. A run waiting on it finds the
        # request completed and returns the certificate, as does one that creates it anew.
        lock.unlink(missing_ok=True)
    return issued


def _carry_out(attempt: _Run, instance: "dg.DagsterInstance | None",
               revoke: Callable[[str, str], str | None], current_run_id: str | None) -> Path:
    """Every step of the request not yet journalled as done, then the certificate."""
    state, tenant = attempt.state, attempt.tenant
    exclude = [current_run_id] if current_run_id else []
    roots = _roots(instance)

    if instance is not None:
        stopped = stop_tenant_runs(instance, tenant, exclude)
        attempt.step("stop_runs", runs_stopped=len(stopped))

    with warehouse.wait_for_writers(tenant):
        targets, kept = _targets(tenant)
        if not state.inventoried:
            items = _target_items(targets, roots, tenant)
            run_ids = tenant_run_ids(instance, tenant, exclude) if instance is not None else []
            if instance is not None:
                items += [i for p, kind in _dagster_files(instance, tenant, run_ids)
                          if (i := _item(p, kind, roots)) is not None]
            attempt.journal("inventory", items=items, run_ids=run_ids)
            state.inventoried = True
            state.add_items(items)
            state.add_runs(run_ids)
        attempt.step("inventory", items=len(state.items),
                     bytes=sum(i["bytes"] for i in state.items.values()),
                     runs=len(state.run_ids), external_exports_kept=len(kept))

        destroyed = keys.destroy(tenant)
        attempt.step("destroy_keys", kinds=list(keys.KEY_KINDS), key_file_found=destroyed)
        _check_keys_gone(tenant)

        names = secret_store.names(tenant)
        at_provider: list[str] = []
        if names:
            new = [n for n in names if n not in state.credentials]
            if new:  # journalled first: a crash after delete_scope still certifies them
                attempt.journal("credentials", names=new)
                state.credentials.extend(new)
            at_provider = [name for name in names if revoke(
                name, secret_store.get(tenant, name, purpose="deletion_revoke"))]
            secret_store.delete_scope(tenant)
        attempt.step("revoke_credentials", names=sorted(state.credentials),
                     revoked_at_provider=sorted(at_provider))

        attempt.add_items(_target_items(targets, roots, tenant))  # appeared since inventory
        for target in targets:
            _remove(target.path)
        attempt.step("delete_files", items=len(state.items),
                     bytes=sum(i["bytes"] for i in state.items.values()))

    if instance is not None:
        late = [r for r in tenant_run_ids(instance, tenant, exclude) if r not in state.run_ids]
        if late:  # runs that started after the inventory (e.g. before a crash)
            attempt.add_items([i for p, kind in _dagster_files(instance, tenant, late)
                               if (i := _item(p, kind, roots)) is not None])
            attempt.journal("runs_found", run_ids=late)
            state.add_runs(late)
        deleted = _delete_dagster(instance, tenant, state.run_ids)
        attempt.step("delete_dagster", runs=len(state.run_ids), runs_deleted_now=deleted,
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
        attempt.journal("certifying", completed_at=iso(completed),
                        certificate=f"certificates/{name}", external_exports_kept=kept)
        state.certifying = {"completed_at": iso(completed), "certificate": f"certificates/{name}",
                            "external_exports_kept": kept}
    certifying = state.certifying
    target = paths().data / certifying["certificate"]
    private = certificate.signing_key()
    body = _certificate_body(state, certifying, private.public_key())
    if not target.exists():
        certificate.write(target, body, private)
    else:
        certificate.verify_certificate(target)  # an earlier attempt wrote it: it must still verify
    attempt.journal("completed", completed_at=certifying["completed_at"],
                    certificate=certifying["certificate"])
    digest = _sha256(target)[1]
    audit.append("deletion_completed", tenant=tenant, request_id=attempt.rid,
                 certificate=certifying["certificate"], certificate_sha256=digest,
                 items=len(state.items), runs_deleted=len(state.run_ids))
    return target


def _certificate_body(state: RequestState, certifying: dict[str, Any],
                      public_key: Ed25519PublicKey) -> dict[str, Any]:
    req = state.request
    items = sorted(state.items.values(), key=lambda i: (i["root"], i["path"], i["sha256"]))
    dagster = state.steps.get("delete_dagster", {})
    return {
        "format": certificate.CERTIFICATE_FORMAT,
        "request_id": req.request_id,
        "tenant": req.tenant,
        "reason": req.reason,
        "source": req.source,
        "requested_at": iso(req.requested_at),
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
        "signer": {"algorithm": "Ed25519",
                   "public_key_fingerprint": certificate.fingerprint(public_key)},
    }
