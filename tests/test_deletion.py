"""Tenant deletion with proof: crypto-shredding, removal, a signed certificate, the audit trail.

Real files, real encrypted warehouses, a real Dagster instance in the test's DAGSTER_HOME.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cleargro_pipeline import bootstrap, tenants, warehouse
from cleargro_pipeline.controls import deletion
from cleargro_pipeline.security import audit, keys, secret_store
from cleargro_pipeline.security.verify_at_rest import scan
from cleargro_pipeline.settings import paths

CANARIES = {"acme": ["Acme Secret Shop 4242", "jane.doe.4242@example.com"],
            "globex": ["Globex Hidden Store 7777", "hank.scorpio.7777@example.com"]}
STEPS = ["stop_runs", "inventory", "destroy_keys", "revoke_credentials", "delete_files",
         "delete_dagster", "unregister"]
TENANT_TAG = "cleargro/tenant"


# --- helpers ----------------------------------------------------------------------------------

def _make_tenant(name: str, rows: int = 500) -> None:
    tenants.add(name)
    shop, email = CANARIES[name]
    with warehouse.open_warehouse(name, purpose="test") as conn:
        conn.execute("create schema raw_shop")
        conn.execute("create table raw_shop.customers as select range as id, "
                     f"'{email}' as email, '{shop} #' || range as note from range({rows})")
        conn.execute("create schema reports")
        conn.execute(f"create table reports.stored as select 'week' as period, '<h1>{shop}</h1>' as html")


def _content(name: str) -> dict[str, tuple[int, str]]:
    """Row count and a hash of the sorted rows of every table of the tenant."""
    found = {}
    with warehouse.open_warehouse(name, purpose="test", read_only=True) as conn:
        tables = conn.execute("select schema_name, table_name from duckdb_tables() "
                              "where database_name = 'wh' order by 1, 2").fetchall()
        for schema, table in tables:
            rows = conn.execute(f"select * from {schema}.{table} order by all").fetchall()
            found[f"{schema}.{table}"] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return found


def _open_with(path: Path, key: bytes) -> int:
    conn = duckdb.connect()
    try:
        conn.execute(f"ATTACH '{path}' AS b (ENCRYPTION_KEY '{key.hex()}', READ_ONLY)")
        return conn.execute("select count(*) from b.raw_shop.customers").fetchone()[0]
    finally:
        conn.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


parts = dg.DynamicPartitionsDefinition(name="tenants")


@dg.asset(partitions_def=parts)
def tenant_probe(context) -> str:
    """A trivial tenant asset whose compute log, event log and output name the tenant's canary."""
    canary = CANARIES[context.partition_key][0]
    print(f"probe {canary}")
    context.log.info(f"probe {canary}")
    return canary


def _materialize(instance: dg.DagsterInstance, tenant: str) -> str:
    result = dg.materialize([tenant_probe], instance=instance, partition_key=tenant,
                            tags={TENANT_TAG: tenant})
    assert result.success
    return result.run_id


@pytest.fixture
def instance(data_dir):
    bootstrap.dagster_home()
    with dg.DagsterInstance.get() as inst:
        yield inst


def _scan_roots(instance=None) -> list[Path]:
    roots = [paths().data]
    if instance is not None:
        roots.append(Path(instance.root_directory))
    return roots


# --- the whole sequence -----------------------------------------------------------------------

def test_deletion_removes_everything_of_one_tenant_and_nothing_of_another(data_dir, instance, tmp_path):
    _make_tenant("acme")
    _make_tenant("globex")
    data = paths().data
    acme_wh = paths().warehouse("acme")
    # Plaintext copies and working files that only deletion removes.
    backup = data / "backups" / "acme" / "x.duckdb"
    backup.parent.mkdir(parents=True)
    shutil.copyfile(acme_wh, backup)
    kept_backup = tmp_path / "kept-aside" / "x.duckdb"  # a backup that left the machine
    kept_backup.parent.mkdir()
    shutil.copyfile(acme_wh, kept_backup)
    export = data / "exports" / "acme" / "2026-W47.html"
    export.parent.mkdir(parents=True)
    export.write_text(f"<h1>{CANARIES['acme'][0]}</h1>")
    stray = data / "work" / "acme" / "dlt" / "leftover" / "load.jsonl"
    stray.parent.mkdir(parents=True)
    stray.write_text(json.dumps({"email": CANARIES["acme"][1]}))
    secret_store.put("acme", "shopify_token", "shpat_acme_token")
    secret_store.put("globex", "shopify_token", "shpat_globex_token")

    instance.add_dynamic_partitions("tenants", ["acme", "globex"])
    acme_runs = [_materialize(instance, "acme"), _materialize(instance, "acme")]
    globex_runs = [_materialize(instance, "globex")]

    # Before: the canaries are on disk (the scan works), the backup opens with acme's key.
    assert scan(_scan_roots(instance), CANARIES["acme"])
    acme_key = keys.unwrap_tenant_key("acme", "data", purpose="test")
    assert _open_with(kept_backup, acme_key) == 500
    wrapped = json.loads((paths().registry / "acme" / "keys.json").read_text())
    wrapped_values = [record["wrapped"] for record in wrapped.values()]
    # A second name for keys.json's inode (as a block the file system has not reused yet):
    # destruction overwrites the bytes in place, so what remains there is random.
    key_bytes = (paths().registry / "acme" / "keys.json").read_bytes()
    inode_view = tmp_path / "keys-inode"
    inode_view.hardlink_to(paths().registry / "acme" / "keys.json")
    expected = {"warehouse": _sha(acme_wh), "backup": _sha(backup), "export": _sha(export)}
    globex_before = _content("globex")
    globex_keys = _sha(paths().registry / "globex" / "keys.json")

    req = deletion.request("acme", "merchant cancelled the subscription", "cli")
    assert deletion.is_deleting("acme") and not deletion.is_deleting("globex")
    revoked = []
    cert_path = deletion.run("acme", instance=instance,
                             revoke=lambda name, value: revoked.append((name, value)))

    # 1. No canary of the deleted tenant anywhere: data dir, Dagster home, backups, exports.
    assert scan(_scan_roots(instance), CANARIES["acme"]) == []
    assert scan(_scan_roots(instance), wrapped_values) == []  # not even its wrapped keys
    left = inode_view.read_bytes()
    assert len(left) == len(key_bytes) and left != key_bytes and b"wrapped" not in left
    # ...while the other tenant's compute log still holds its probe line: the scan still sees.
    assert scan(_scan_roots(instance), CANARIES["globex"][:1])

    # 2. The backup taken before deletion opens with no key the system still holds.
    assert not (paths().registry / "acme").exists()
    with pytest.raises(keys.KeyUnavailable):
        keys.unwrap_tenant_key("acme", "data", purpose="test")
    held = [keys.unwrap_tenant_key(t.name, kind, purpose="test")
            for t in tenants.all_tenants() for kind in keys.KEY_KINDS] + [keys.master_key()]
    assert len(held) == 3
    for key in held:
        with pytest.raises(duckdb.Error):
            _open_with(kept_backup, key)

    # 3. The audit log records the whole sequence, and its chain verifies.
    trail = [(e["action"], e["detail"].get("step")) for e in audit.entries()
             if e["tenant"] == "acme" and e["action"].startswith("deletion_")]
    assert trail == ([("deletion_requested", None)] + [("deletion_step", s) for s in STEPS]
                     + [("deletion_completed", None)])
    audit.verify()

    # 4. The other tenant is untouched: content, keys, credentials, runs, partition.
    assert _content("globex") == globex_before
    assert _sha(paths().registry / "globex" / "keys.json") == globex_keys
    assert secret_store.get("globex", "shopify_token") == "shpat_globex_token"
    assert instance.get_run_ids(dg.RunsFilter(tags={TENANT_TAG: "globex"})) == globex_runs
    assert instance.get_run_ids(dg.RunsFilter(tags={TENANT_TAG: "acme"})) == []
    assert all(instance.get_run_record_by_id(r) is None for r in acme_runs)
    assert list(instance.get_dynamic_partitions("tenants")) == ["globex"]
    storage = Path(instance.storage_directory())
    assert not any((storage / r).exists() for r in acme_runs)  # compute logs
    assert all((storage / r).exists() for r in globex_runs)
    assert not (storage / "tenant_probe" / "acme").exists()  # I/O-manager output
    assert (storage / "tenant_probe" / "globex").exists()
    # Not even the tenant's name stays in Dagster's SQLite files (freed pages included).
    home = Path(instance.root_directory)
    def holding(name: bytes) -> list[str]:
        return [str(f.relative_to(home)) for f in home.rglob("*")
                if f.is_file() and name in f.read_bytes()]
    assert holding(b"acme") == []
    assert any(f.endswith(".db") for f in holding(b"globex"))  # the check does see names

    # The deleted tenant is gone from every place it lived, and from the registry.
    for gone in (paths().tenant_dir("acme"), data / "exports" / "acme", data / "backups" / "acme",
                 paths().tenant_work("acme"), paths().registry / "acme"):
        assert not gone.exists(), gone
    # No file or folder under data/ is named after it (its lock files included), except its
    # certificate, which names it on purpose.
    named = [p.relative_to(data).as_posix() for p in data.rglob("*") if "acme" in p.name]
    assert [p for p in named if not p.startswith("certificates/")] == []
    with pytest.raises(tenants.UnknownTenant):
        tenants.get("acme")
    assert [t.name for t in tenants.all_tenants()] == ["globex"]
    assert revoked == [("shopify_token", "shpat_acme_token")]

    # The certificate: outside the tenant's folders, signed, and listing what was removed.
    assert cert_path.parent == data / "certificates"
    cert = deletion.verify_certificate(cert_path)
    body = cert.body
    assert body["tenant"] == "acme" and body["request_id"] == req.request_id
    assert body["source"] == "cli" and body["reason"] == "merchant cancelled the subscription"
    assert body["requested_at"] <= body["keys_destroyed_at"] <= body["completed_at"]
    by_path = {i["path"]: i for i in body["items"]}
    assert by_path["tenants/acme/warehouse.duckdb"]["sha256"] == expected["warehouse"]
    assert by_path["tenants/acme/warehouse.duckdb"]["kind"] == "warehouse"
    assert by_path["exports/acme/2026-W47.html"]["sha256"] == expected["export"]
    assert by_path["registry/acme/keys.json"]["kind"] == "wrapped_keys"
    assert by_path["registry/acme/secrets.json"]["kind"] == "sealed_credentials"
    assert "work/acme/dlt/leftover/load.jsonl" in by_path
    assert {i["kind"] for i in body["items"]} >= {"dagster_compute_log", "dagster_event_log",
                                                  "dagster_output"}
    assert all(i["bytes"] >= 0 and len(i["sha256"]) == 64 for i in body["items"])
    assert body["backups_rendered_unreadable"] == [
        {"id": "x", "path": "backups/acme/x.duckdb", "bytes": backup_size(by_path),
         "sha256": expected["backup"]}]
    assert body["runs_deleted"] == 2 and sorted(body["dagster"]["run_ids"]) == sorted(acme_runs)
    assert body["credentials_revoked"] == ["shopify_token"]
    assert [s["step"] for s in body["steps"]] == STEPS
    assert not any("globex" in i["path"] for i in body["items"])

    # The request is completed; it is no longer pending, deleting or overdue.
    assert not deletion.is_deleting("acme") and deletion.pending() == []
    assert deletion.status("acme").status == "completed"
    assert deletion.overdue(req.requested_at + timedelta(days=40)) == []


def backup_size(by_path: dict) -> int:
    return by_path["backups/acme/x.duckdb"]["bytes"]


# --- the certificate --------------------------------------------------------------------------

@pytest.fixture
def certificate(data_dir) -> Path:
    _make_tenant("acme", rows=10)
    backup = paths().data / "backups" / "acme" / "x.duckdb"
    backup.parent.mkdir(parents=True)
    shutil.copyfile(paths().warehouse("acme"), backup)
    deletion.request("acme", "test", "shopify_shop_redact")
    return deletion.run("acme")


def _flipped(src: Path, dst: Path, position: int, mask: int = 0x01) -> Path:
    raw = bytearray(src.read_bytes())
    raw[position] ^= mask
    dst.write_bytes(bytes(raw))
    return dst


def test_certificate_verifies_and_any_edited_byte_fails(certificate, tmp_path):
    cert = deletion.verify_certificate(certificate)
    assert cert.tenant == "acme" and cert.body["source"] == "shopify_shop_redact"
    assert cert.body["runs_deleted"] is None  # no instance: the certificate says so
    raw = certificate.read_bytes()
    text = raw.decode()
    wrapper = json.loads(text)
    sig_at = text.index(wrapper["signature"])
    item_hash_at = text.index(wrapper["certificate"]["items"][0]["sha256"])
    key_at = text.index(wrapper["public_key"])
    positions = {
        "first byte": 0,
        "middle": len(raw) // 2,
        "signature start": sig_at,
        "signature middle": sig_at + 40,
        "signature last data char": sig_at + len(wrapper["signature"]) - 3,
        "item hash": item_hash_at + 10,
        "embedded public key": key_at + 5,
        "tenant name": text.index('"tenant": "acme"') + 12,
        "indentation": text.index("\n  ") + 2,
        "final newline": len(raw) - 1,
    }
    for what, position in positions.items():
        for mask in (0x01, 0x20):
            edited = _flipped(certificate, tmp_path / f"edited-{position}-{mask}.json", position, mask)
            with pytest.raises(deletion.CertificateInvalid):
                deletion.verify_certificate(edited)
                pytest.fail(f"edit at {what} ({position}, ^{mask:#x}) was not detected")
    # A signature whose unused base64 bits differ decodes to the same bytes: still an edit.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    signature = wrapper["signature"]
    assert signature.endswith("==")  # 64 bytes: the last data character carries 4 unused bits
    last = sig_at + len(signature) - 3
    same_bytes = signature[:-3] + alphabet[alphabet.index(signature[-3]) ^ 1] + "=="
    assert base64.b64decode(same_bytes) == base64.b64decode(signature)
    padded = tmp_path / "padding-bits.json"
    padded.write_bytes(raw[:last] + same_bytes[-3].encode() + raw[last + 1:])
    with pytest.raises(deletion.CertificateInvalid, match="canonical base64"):
        deletion.verify_certificate(padded)
    # Whitespace that JSON ignores is still an edit.
    spaced = tmp_path / "spaced.json"
    spaced.write_bytes(raw.replace(b'{\n  "certificate"', b'{\n\t"certificate"', 1))
    with pytest.raises(deletion.CertificateInvalid, match="edited"):
        deletion.verify_certificate(spaced)


def test_certificate_with_another_key_or_without_signature_fails(certificate, tmp_path):
    other = Ed25519PrivateKey.generate().public_key()
    other_pem = tmp_path / "other.pub"
    other_pem.write_bytes(other.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(deletion.CertificateInvalid, match="different key"):
        deletion.verify_certificate(certificate, other_pem)
    # The published key verifies it when given explicitly, as a third party would.
    assert deletion.verify_certificate(certificate, deletion.signing_public_key_path()).tenant == "acme"

    wrapper = json.loads(certificate.read_text())
    unsigned = tmp_path / "unsigned.json"
    unsigned.write_text(json.dumps({k: v for k, v in wrapper.items() if k != "signature"},
                                   sort_keys=True, indent=2) + "\n")
    with pytest.raises(deletion.CertificateInvalid, match="no signature"):
        deletion.verify_certificate(unsigned)

    # Re-signed by another key that it carries itself: still refused against the published key.
    forger = Ed25519PrivateKey.generate()
    body = dict(wrapper["certificate"], tenant="acme")
    forged = {"certificate": body,
              "signature": base64.b64encode(forger.sign(deletion.certificate.canonical(body))).decode(),
              "public_key": base64.b64encode(forger.public_key().public_bytes(
                  serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()}
    forged_path = tmp_path / "forged.json"
    forged_path.write_bytes(deletion.certificate.file_bytes(forged))
    with pytest.raises(deletion.CertificateInvalid, match="different key"):
        deletion.verify_certificate(forged_path)

    # The signing key is sealed in the platform secret store; the PEM beside it is public only.
    assert deletion.SIGNING_KEY_NAME in secret_store.names("platform")
    assert b"PRIVATE" not in deletion.signing_public_key_path().read_bytes()


# --- the request store ------------------------------------------------------------------------

def test_request_is_durable_before_run_and_overdue_after_25_days(data_dir):
    _make_tenant("acme", rows=10)
    req = deletion.request("acme", "customer asked", "registry")
    journal = paths().data / "deletion" / "requests.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [(r["event"], r["tenant"], r["source"]) for r in lines] == [("requested", "acme", "registry")]
    assert paths().warehouse("acme").exists()  # nothing else happened yet
    assert deletion.is_deleting("acme") and deletion.deleting() == {"acme"}
    assert [r.request_id for r in deletion.pending()] == [req.request_id]
    # Idempotent while pending: the same request, no second line.
    assert deletion.request("acme", "again", "shopify_shop_redact").request_id == req.request_id
    assert deletion.request("acme", "", "cli").request_id == req.request_id  # `delete --now`
    assert len(journal.read_text().splitlines()) == 1

    assert deletion.overdue(req.requested_at + timedelta(days=24)) == []
    assert [r.request_id for r in deletion.overdue(req.requested_at + timedelta(days=26))] \
        == [req.request_id]

    deletion.run("acme")
    assert deletion.overdue(req.requested_at + timedelta(days=26)) == []
    assert deletion.status("acme").status == "completed"
    # A retried webhook after completion gets the completed request back.
    assert deletion.request("acme", "again", "shopify_shop_redact").status == "completed"

    with pytest.raises(tenants.UnknownTenant):
        deletion.request("nobody", "x", "cli")
    with pytest.raises(ValueError):
        deletion.request("acme", "x", "email")
    _make_tenant("globex", rows=1)
    with pytest.raises(ValueError, match="needs a reason"):
        deletion.request("globex", " ", "cli")
    with pytest.raises(deletion.NoDeletionRequest):
        deletion.run("globex")
    assert not deletion.is_deleting("globex") and tenants.exists("globex")


# --- idempotency and crash safety ---------------------------------------------------------------

def test_running_twice_returns_the_first_certificate(data_dir):
    _make_tenant("acme", rows=10)
    deletion.request("acme", "test", "cli")
    first = deletion.run("acme")
    second = deletion.run("acme")
    assert first == second
    assert sorted(p.name for p in (paths().data / "certificates").glob("*.json")) == [first.name]
    steps = [e["detail"]["step"] for e in audit.entries() if e["action"] == "deletion_step"]
    assert steps == STEPS[1:]  # recorded once; no instance, so no stop_runs
    assert sum(e["action"] == "deletion_completed" for e in audit.entries()) == 1


def test_a_run_that_died_midway_is_finished_by_the_next_and_certifies_both(data_dir, instance,
                                                                          monkeypatch):
    _make_tenant("acme", rows=10)
    instance.add_dynamic_partitions("tenants", ["acme"])
    run_id = _materialize(instance, "acme")
    warehouse_sha = _sha(paths().warehouse("acme"))
    deletion.request("acme", "test", "cli")

    real_remove, calls = deletion.steps._remove, []

    def dying_remove(path):
        calls.append(path)
        if len(calls) == 3:  # tenant folder and exports are gone, then the process dies
            raise KeyboardInterrupt("killed")
        real_remove(path)

    monkeypatch.setattr(deletion.steps, "_remove", dying_remove)
    with pytest.raises(KeyboardInterrupt):
        deletion.run("acme", instance=instance)
    assert not paths().warehouse("acme").exists()
    assert not (paths().registry / "acme" / "keys.json").exists()
    assert deletion.is_deleting("acme")
    destroyed_at = next(e["ts"] for e in audit.entries() if e["detail"].get("step") == "destroy_keys")

    monkeypatch.setattr(deletion.steps, "_remove", real_remove)
    cert = deletion.verify_certificate(deletion.run("acme", instance=instance))
    by_path = {i["path"]: i for i in cert.items}
    assert by_path["tenants/acme/warehouse.duckdb"]["sha256"] == warehouse_sha  # first attempt's
    assert by_path["registry/acme/keys.json"]["kind"] == "wrapped_keys"
    assert cert.body["keys_destroyed_at"] <= destroyed_at
    assert cert.body["dagster"]["run_ids"] == [run_id]
    assert instance.get_run_record_by_id(run_id) is None
    assert [s["step"] for s in cert.body["steps"]] == STEPS
    assert [e["detail"]["step"] for e in audit.entries() if e["action"] == "deletion_step"] == STEPS
    assert not tenants.exists("acme") and not deletion.is_deleting("acme")
    audit.verify()


def test_pending_runs_of_the_tenant_are_stopped_and_the_deletion_run_itself_is_kept(data_dir, instance):
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    _make_tenant("acme", rows=10)
    _make_tenant("globex", rows=10)
    instance.add_dynamic_partitions("tenants", ["acme", "globex"])

    def pending(tenant: str) -> str:  # (a QUEUED run needs a code location; NOT_STARTED does not)
        run = DagsterRun(job_name="tenant_refresh", status=DagsterRunStatus.NOT_STARTED,
                         tags={TENANT_TAG: tenant})
        return instance.add_run(run).run_id

    waiting, other, own = pending("acme"), pending("globex"), pending("acme")
    deletion.request("acme", "test", "cli")
    cert = deletion.verify_certificate(deletion.run("acme", instance=instance, current_run_id=own))
    assert instance.get_run_record_by_id(waiting) is None  # cancelled, then deleted
    assert instance.get_run_by_id(own).status == DagsterRunStatus.NOT_STARTED  # the deletion's own
    assert instance.get_run_by_id(other).status == DagsterRunStatus.NOT_STARTED
    assert cert.body["steps"][0] == {"step": "stop_runs", "at": cert.body["steps"][0]["at"],
                                     "runs_stopped": 1}
    assert cert.body["dagster"]["run_ids"] == [waiting]


def test_exports_listed_by_manifests_and_the_audit_log_are_removed_when_provably_ours(data_dir, tmp_path):
    _make_tenant("acme", rows=10)
    outside = tmp_path / "analyst"
    outside.mkdir()
    html = f"<h1>{CANARIES['acme'][0]}</h1>"
    digest = hashlib.sha256(html.encode()).hexdigest()

    def exported(name: str, body: bytes, fmt: str = "html") -> Path:
        path = outside / name
        path.write_bytes(body)
        audit.append("report_export", tenant="acme", purpose="export", period="2026-W47",
                     report_id="r1", sha256=digest, format=fmt, path=str(path),
                     size_bytes=len(body))
        return path

    same = exported("week.html", html.encode())            # still what was exported: removed
    changed = exported("edited.html", html.encode())
    changed.write_text("the analyst's own notes")           # changed since: left, reported
    pdf = exported("week.pdf", b"%PDF-1.7 ...", fmt="pdf")  # cannot be proven ours: left, reported
    listed = outside / "archive.cgx"  # registered like export.py does: data/exports/<t>/<id>.json
    listed.write_bytes(b"CGEXPORT\x01 sealed bytes")
    manifest = paths().data / "exports" / "acme" / "20261129T120000Z-0a1b2c3d.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"export_id": manifest.stem, "tenant": "acme",
                                    "path": str(listed), "sha256": _sha(listed)}))
    replaced = outside / "replaced.cgx"  # the registered archive was replaced by another file
    replaced.write_bytes(b"something else")
    (manifest.parent / "20261129T130000Z-0a1b2c3e.json").write_text(json.dumps(
        {"path": str(replaced), "sha256": "0" * 64}))

    deletion.request("acme", "test", "cli")
    cert = deletion.verify_certificate(deletion.run("acme"))
    assert not same.exists() and not listed.exists() and not manifest.exists()
    assert changed.exists() and pdf.exists() and replaced.exists()
    by_path = {i["path"]: i for i in cert.items}
    assert by_path[str(same)]["root"] == "absolute" and by_path[str(same)]["sha256"] == digest
    assert by_path[str(listed)]["kind"] == "export"
    assert {k["path"] for k in cert.body["external_exports_not_removed"]} == {
        str(changed), str(pdf), str(replaced)}
