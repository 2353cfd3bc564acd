"""Tenant backups on real encrypted warehouses: the restore drill, encryption at rest,
refusals that leave the warehouse as it was, another tenant's key, purging, listing."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.controls import backups
from cleargro_pipeline.security import audit, keys
from cleargro_pipeline.security.verify_at_rest import scan
from cleargro_pipeline.settings import paths

CANARY = "Quillon Marchbanks 7731"
NOW = datetime(2026, 11, 29, 12, 5, 1, tzinfo=timezone.utc)


def _fill(tenant: str, orders: int = 3000) -> None:
    with warehouse.open_warehouse(tenant, purpose="ingest") as conn:
        conn.execute("create schema raw_shop")
        conn.execute("create schema marts")
        conn.execute(f"""create table raw_shop.orders as
            select range as id,
                   case when range = 7 then '{CANARY}' else 'Customer ' || range end as customer_name,
                   (range * 1.25)::decimal(12, 2) as amount,
                   date '2026-01-01' + (range % 300)::int as ordered_on,
                   ['tag' || (range % 5), 'x'] as tags
            from range({orders})""")
        conn.execute("""create table raw_shop.products as
            select range as id, 'Product ' || range as title, (range % 90) + 0.5 as price
            from range(400)""")
        conn.execute("""create table marts.fct_daily_sales as
            select ordered_on as date_day, sum(amount) as net_revenue, count(*) as orders
            from raw_shop.orders group by 1""")


def _checks(tenant: str) -> dict[str, backups.TableCheck]:
    with warehouse.open_warehouse(tenant, purpose="query", read_only=True) as conn:
        return backups.table_checksums(conn)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _actions(action: str) -> list[dict]:
    return [e for e in audit.entries() if e["action"] == action]


def _leftovers(tenant: str) -> list[str]:
    """Anything a restore could leave in the tenant's folder besides the warehouse itself."""
    folder = paths().tenant_dir(tenant)
    return sorted(p.name for p in folder.iterdir()
                  if p.name not in {"warehouse.duckdb", "warehouse.lock", "tmp"})


@pytest.fixture
def acme(tenant: str) -> str:
    _fill(tenant)
    return tenant


def test_restore_drill(acme):
    before = _checks(acme)
    backup = backups.take(acme, now=NOW)
    assert backup.id == "20261129T120501Z" and backup.reason == "manual"
    assert backup.tables == before  # the manifest describes the warehouse it copied
    assert backup.tables["raw_shop.orders"].rows == 3000 and backup.rows == 3000 + 400 + 300

    with warehouse.open_warehouse(acme, purpose="ingest") as conn:
        conn.execute("delete from raw_shop.orders where id < 1000")
        conn.execute("update raw_shop.products set price = price + 1 where id = 3")
        conn.execute("create table marts.scratch as select 1 as x")
    changed = _checks(acme)
    assert changed["raw_shop.orders"].rows == 2000 and "marts.scratch" in changed
    # one value changed, same row count: only the checksum sees it
    assert changed["raw_shop.products"].rows == before["raw_shop.products"].rows
    assert changed["raw_shop.products"].checksum != before["raw_shop.products"].checksum

    report = backups.restore(acme, backup.id, now=NOW + timedelta(hours=1))
    assert (report.backup_id, report.tables_verified, report.rows_verified) == (backup.id, 3, backup.rows)
    assert report.checksums_compared
    assert _checks(acme) == backup.tables
    with warehouse.open_warehouse(acme, purpose="query", read_only=True) as conn:
        assert conn.execute("select count(*) from raw_shop.orders where id < 1000").fetchone()[0] == 1000
        assert conn.execute("select customer_name from raw_shop.orders where id = 7").fetchone()[0] == CANARY
        assert conn.execute("select count(*) from duckdb_tables() where table_name = 'scratch'").fetchone()[0] == 0

    # The replaced warehouse is kept, verified, as a pre-restore backup: nothing is lost ...
    safety = report.safety_backup
    assert safety.reason == "pre-restore" and safety.verified and safety.tables == changed
    assert [b.id for b in backups.list_backups(acme)] == [safety.id, backup.id]
    # ... and it restores too: the drill runs both ways.
    again = backups.restore(acme, safety.id, now=NOW + timedelta(hours=2))
    assert _checks(acme) == changed and again.safety_backup.tables == backup.tables

    assert _leftovers(acme) == []
    assert [e["detail"]["backup_id"] for e in _actions("backup_restored")] == [backup.id, safety.id]
    taken = _actions("backup_taken")
    assert [e["detail"]["reason"] for e in taken] == ["manual", "pre-restore", "pre-restore"]
    assert taken[0]["detail"] == {"backup_id": backup.id, "reason": "manual", "verified": True,
                                  "tables": 3, "rows": backup.rows, "size": backup.size}


def test_backup_is_the_encrypted_file_byte_for_byte_and_holds_no_plaintext(acme):
    with warehouse.open_warehouse(acme, purpose="query", read_only=True) as conn:  # control
        assert conn.execute("select count(*) from raw_shop.orders where customer_name = ?",
                            [CANARY]).fetchone()[0] == 1
    backup = backups.take(acme)

    # An unchanged copy of the warehouse: still encrypted under the tenant's data key.
    assert backup.sha256 == _digest(paths().warehouse(acme)) == _digest(backup.path)
    warehouse.check_file(acme, backup.path)  # whole, encrypted DuckDB file
    folder = backups.backups_dir(acme)
    assert scan([folder], [CANARY]) == []  # no canary, no unencrypted DuckDB file (manifest included)
    assert CANARY not in paths().audit_log.read_text()

    assert stat.S_IMODE(backup.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup.manifest_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    # Only the tenant's data key opens it: not without a key, not with the master key.
    with pytest.raises(duckdb.Error, match="without a key"):
        duckdb.connect().execute(f"ATTACH '{backup.path}' AS b (READ_ONLY)")
    with pytest.raises(duckdb.Error, match="(?i)wrong encryption key"):
        duckdb.connect().execute(
            f"ATTACH '{backup.path}' AS b (READ_ONLY, ENCRYPTION_KEY '{keys.master_key().hex()}')")
    data_key = keys.unwrap_tenant_key(acme, "data", "test").hex()
    conn = duckdb.connect()
    conn.execute(f"ATTACH '{backup.path}' AS b (READ_ONLY, ENCRYPTION_KEY '{data_key}')")
    assert conn.execute("select count(*) from b.raw_shop.orders").fetchone()[0] == 3000
    conn.close()
    assert data_key not in backup.manifest_path.read_text() + paths().audit_log.read_text()

    manifest = json.loads(backup.manifest_path.read_text())
    assert manifest["tables"]["raw_shop.orders"] == {
        "rows": 3000, "checksum": backup.tables["raw_shop.orders"].checksum}
    assert int(manifest["tables"]["raw_shop.orders"]["checksum"]) != 0  # numbers only


def _flip_byte(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["middle", "last block"])
@pytest.mark.parametrize("manifest_too", [False, True], ids=["file only", "file and manifest"])
def test_corrupted_backup_is_refused_before_anything_is_replaced(acme, where, manifest_too):
    backup = backups.take(acme, now=NOW)
    live = paths().warehouse(acme)
    before = _digest(live)
    _flip_byte(backup.path, backup.size // 2 if where == "middle" else backup.size - 10)
    if manifest_too:  # bit rot that also "fixed" the manifest: the file's own GCM tags still tell
        manifest = json.loads(backup.manifest_path.read_text())
        manifest["sha256"] = _digest(backup.path)
        backup.manifest_path.write_text(json.dumps(manifest))
    match = "damaged" if manifest_too else "backup 20261129T120501Z is corrupted.*SHA-256"
    with pytest.raises(backups.CorruptBackup, match=f"tenant 'acme': .*{match}.*nothing was restored"):
        backups.restore(acme, backup.id, now=NOW + timedelta(hours=1))
    assert _digest(live) == before
    assert [b.id for b in backups.list_backups(acme)] == [backup.id]  # no pre-restore backup
    assert _leftovers(acme) == [] and not _actions("backup_restored")


def test_backup_of_another_tenant_does_not_restore(acme):
    tenants.add("other")
    with warehouse.open_warehouse("other", purpose="ingest") as conn:
        conn.execute("create table t as select range as id from range(10)")
    backup = backups.take(acme, now=NOW)
    other_live = paths().warehouse("other")
    before = _digest(other_live)
    target = backups.backups_dir("other")
    target.mkdir(parents=True)
    shutil.copy(backup.path, target / backup.path.name)
    shutil.copy(backup.manifest_path, target / backup.manifest_path.name)

    # As copied, its manifest names acme.
    assert backups.list_backups("other")[0].problem == "manifest names tenant 'acme', not 'other'"
    with pytest.raises(backups.CorruptBackup, match="names tenant 'acme'"):
        backups.restore("other", backup.id)
    # Forged to name 'other': the file itself does not open with other's data key.
    manifest = json.loads((target / backup.manifest_path.name).read_text())
    manifest["tenant"] = "other"
    (target / backup.manifest_path.name).write_text(json.dumps(manifest))
    with pytest.raises(backups.RestoreRefused,
                       match="tenant 'other': backup 20261129T120501Z does not open with tenant "
                             "'other''s data key.*nothing was restored"):
        backups.restore("other", backup.id)
    assert _digest(other_live) == before
    assert [b.id for b in backups.list_backups("other")] == [backup.id]
    assert _leftovers("other") == [] and not _actions("backup_restored")


def test_restore_recovers_a_damaged_or_missing_warehouse(acme):
    backup = backups.take(acme, now=NOW)
    live = paths().warehouse(acme)
    _flip_byte(live, warehouse.HEADER_BYTES + 10)  # the live warehouse no longer opens
    with pytest.raises(warehouse.WarehouseError):
        _checks(acme)
    damaged = _digest(live)

    report = backups.restore(acme, backup.id, now=NOW + timedelta(hours=1))
    assert _checks(acme) == backup.tables
    kept = report.safety_backup  # the damaged bytes are kept (encrypted), unverified
    assert (kept.reason, kept.verified, kept.sha256) == ("pre-restore", False, damaged)
    assert backups.list_backups(acme)[0].problem.startswith("kept unverified")
    with pytest.raises(backups.RestoreRefused, match="kept unverified"):
        backups.restore(acme, kept.id)

    live.unlink()
    report = backups.restore(acme, backup.id, now=NOW + timedelta(hours=2))
    assert report.safety_backup is None and _checks(acme) == backup.tables


def test_a_plaintext_warehouse_is_neither_backed_up_nor_kept(acme):
    backup = backups.take(acme, now=NOW)
    live = paths().warehouse(acme)
    live.unlink()
    duckdb.connect(str(live)).execute(f"create table t as select '{CANARY}' as v").close()
    with pytest.raises(warehouse.WarehouseError, match="not encrypted"):
        backups.take(acme, now=NOW + timedelta(hours=1))
    with pytest.raises(backups.RestoreRefused, match="not a recognisable encrypted DuckDB file"):
        backups.restore(acme, backup.id, now=NOW + timedelta(hours=1))
    assert scan([backups.backups_root()], [CANARY]) == []
    assert [b.id for b in backups.list_backups(acme)] == [backup.id]


def test_purge_removes_only_backups_past_the_window(acme):
    taken = {age: backups.take(acme, now=NOW - timedelta(days=age)).id for age in (200, 91, 90, 89, 0)}
    tenants.add("other")
    with warehouse.open_warehouse("other", purpose="ingest") as conn:
        conn.execute("create table t as select 1 as x")
    old_other = backups.take("other", now=NOW - timedelta(days=120)).id
    new_other = backups.take("other", now=NOW).id

    purged = backups.purge(now=NOW)
    assert purged == [f"acme/{taken[200]}", f"acme/{taken[91]}", f"other/{old_other}"]
    assert [b.id for b in backups.list_backups(acme)] == [taken[0], taken[89], taken[90]]
    assert [b.id for b in backups.list_backups("other")] == [new_other]
    for backup_id in (taken[200], taken[91]):
        assert not list(backups.backups_dir(acme).glob(f"{backup_id}.*"))
    entries = _actions("backup_purged")
    assert [(e["tenant"], e["detail"]["backup_id"]) for e in entries] == [
        ("acme", taken[200]), ("acme", taken[91]), ("other", old_other)]
    assert entries[0]["detail"]["age_days"] == 200 and entries[0]["detail"]["size"] > 0
    assert entries[0]["detail"]["files"] == 2

    assert backups.purge(now=NOW) == []
    assert backups.purge(older_than=timedelta(days=30), now=NOW) == [
        f"acme/{taken[90]}", f"acme/{taken[89]}"]


def test_listing_flags_problems_and_errors_name_what_is_wrong(acme):
    assert backups.list_backups(acme) == []
    first = backups.take(acme, now=NOW)
    same_second = backups.take(acme, now=NOW)
    latest = backups.take(acme, now=NOW + timedelta(days=1))
    assert same_second.id == "20261129T120501Z-2"
    listed = backups.list_backups(acme)
    assert [b.id for b in listed] == [latest.id, same_second.id, first.id]
    assert all(b.problem is None for b in listed) and listed[0] == latest

    first.path.unlink()
    with open(same_second.path, "ab") as f:
        f.write(b"\0" * 4096)
    problems = {b.id: b.problem for b in backups.list_backups(acme)}
    assert problems[first.id] == "backup file is missing"
    assert problems[same_second.id] == (f"backup file is {same_second.size + 4096} bytes, "
                                        f"the manifest says {same_second.size}")
    with pytest.raises(backups.CorruptBackup, match=f"backup {first.id}: file .* is missing"):
        backups.restore(acme, first.id)
    with pytest.raises(backups.CorruptBackup, match=f"backup {same_second.id} is corrupted"):
        backups.restore(acme, same_second.id)

    known = f"known backups: {latest.id}, {same_second.id}, {first.id}"
    for wrong in ("20200101T000000Z", "../../registry/acme/keys"):
        with pytest.raises(backups.UnknownBackup, match=f"tenant 'acme' has no backup .*{known}"):
            backups.restore(acme, wrong)

    for call in (backups.take, backups.list_backups, lambda t: backups.restore(t, first.id)):
        with pytest.raises(tenants.UnknownTenant, match="unknown tenant 'ghost'"):
            call("ghost")
    tenants.add("empty")
    with pytest.raises(backups.BackupError, match="tenant 'empty' has no warehouse yet"):
        backups.take("empty")
    assert not paths().warehouse("empty").exists()


def test_a_backup_from_another_duckdb_version_is_verified_by_row_counts(acme):
    backup = backups.take(acme, now=NOW)
    manifest = json.loads(backup.manifest_path.read_text())
    # DuckDB's hash may change between versions: then only row counts can be compared.
    manifest["duckdb_version"] = "0.0.0"
    manifest["tables"]["raw_shop.products"]["checksum"] = "1"
    backup.manifest_path.write_text(json.dumps(manifest))
    report = backups.restore(acme, backup.id, now=NOW + timedelta(hours=1))
    assert not report.checksums_compared and _checks(acme) == backup.tables
    assert _actions("backup_restored")[-1]["detail"]["checksums_compared"] is False
    # Row counts still are: one row short in the manifest refuses the restore.
    manifest["tables"]["raw_shop.products"]["rows"] = 399
    backup.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(backups.CorruptBackup, match="table raw_shop.products has 400 rows, the "
                                                    "manifest says 399; nothing was restored"):
        backups.restore(acme, backup.id, now=NOW + timedelta(hours=2))
