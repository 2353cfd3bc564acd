"""`cleargro export`: every raw table and mart as Parquet in an encrypted, expiring archive.

The tests run on a private copy of the session's demo tenant (conftest `built_demo`, the
warehouse `demo_env` enters): an export writes its registry entry and audit entries into the
data folder and expiry deletes files, so the shared demo stays untouched.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import private_demo

from cleargro_pipeline.controls import export as ex
from cleargro_pipeline.security import audit, verify_at_rest
from cleargro_pipeline.settings import paths
from cleargro_pipeline.warehouse import ALIAS, open_warehouse

TENANT = "demo"


@dataclass
class Env:
    data: Path
    out: Path  # where the requester asks for archives: outside data/
    temp: set[Path]  # the project's temp entries before these tests


@pytest.fixture(scope="module")
def env(built_demo, tmp_path_factory) -> Env:
    root = tmp_path_factory.mktemp("export")
    out = root / "out"
    out.mkdir()
    temp = set(Path(tempfile.gettempdir()).glob("cleargro*"))
    with private_demo(built_demo, root) as data:
        # The alert lifecycle table (`insights.alerts`) exists once alerts were evaluated.
        from cleargro_pipeline.alerts import service
        service.run(TENANT)
        yield Env(data, out, temp)


@pytest.fixture(scope="module")
def made(env) -> ex.ExportResult:
    return ex.export(TENANT, env.out / "demo-export.cgx")


@pytest.fixture(scope="module")
def files(made) -> dict[str, bytes]:
    return ex.decrypt(made.path, made.key_text)


def _warehouse_tables(conn) -> set[str]:
    """What the export must hold, worked out independently of the module."""
    rows = conn.execute("select table_schema, table_name from information_schema.tables "
                        "where table_catalog = ?", [ALIAS]).fetchall()
    return {f"{s}.{t}" for s, t in rows
            if (s.startswith("raw_") and not s.endswith("_staging") and not t.startswith("_dlt_"))
            or s == "marts" or (s, t) in {("insights", "opportunities"), ("insights", "alerts")}}


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in table.column_names]).combine_chunks()


# --- round trip ---------------------------------------------------------------------------

def test_every_table_round_trips_exactly(env, made, files):
    manifest = ex.manifest_of(files)
    created = datetime.fromisoformat(manifest["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(manifest["expires_at"].replace("Z", "+00:00"))
    assert manifest["tenant"] == TENANT and manifest["export_id"] == made.export_id
    assert expires - created == timedelta(days=7) and made.expires_at == expires

    listed = {t["table"]: t for t in manifest["tables"]}
    assert set(files) == {"manifest.json", *(t["file"] for t in listed.values())}
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        assert set(listed) == _warehouse_tables(conn)
        assert {"raw_shop.orders", "raw_shop.products", "raw_ga4.items_daily",
                "raw_google_ads.search_term_daily", "raw_app.app_events", "marts.fct_orders",
                "marts.fct_daily_sales", "insights.opportunities", "insights.alerts"} <= set(listed)
        assert not [t for t in listed if "._dlt_" in t or "_staging." in t]
        assert made.tables == len(listed) and made.rows == sum(t["rows"] for t in listed.values())

        for name, entry in listed.items():
            body = files[entry["file"]]
            assert entry["file"] == f"tables/{name}.parquet"
            assert hashlib.sha256(body).hexdigest() == entry["sha256"], name
            assert len(body) == entry["bytes"] and body[:4] == b"PAR1", name
            got = pq.read_table(io.BytesIO(body))
            schema, table = name.split(".")
            want = conn.execute(f'select * from "{schema}"."{table}"').to_arrow_table()
            described = [{"name": c, "type": t} for c, t, *_ in
                         conn.execute(f'describe "{schema}"."{table}"').fetchall()]
            assert entry["columns"] == described, name
            assert got.column_names == [c["name"] for c in described], name
            assert got.num_rows == want.num_rows == entry["rows"], name
            assert got.schema.remove_metadata() == want.schema.remove_metadata(), name
            assert _sorted(got).equals(_sorted(want.cast(got.schema))), f"{name}: content differs"
    assert sum(t["rows"] for t in listed.values()) > 500_000  # the small demo, really exported


def test_extract_to_a_folder_writes_private_files(made, files, tmp_path):
    dest = tmp_path / "unpacked"
    try:
        extracted = ex.decrypt(made.path, made.key_text, dest)
        assert set(extracted) == set(files)
        for name, path in extracted.items():
            assert path == dest / name and path.read_bytes() == files[name]
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(dest.stat().st_mode) == 0o700
        with pytest.raises(ex.ExportError, match="refusing to overwrite"):
            ex.decrypt(made.path, made.key_text, dest)
        assert {p.name for p in (dest / "tables").iterdir()} == \
            {Path(n).name for n in files if n.startswith("tables/")}  # the refusal removed nothing
    finally:
        shutil.rmtree(dest, ignore_errors=True)  # the requester's plaintext: not left behind


def test_archive_file_is_private_and_never_overwritten(env, made):
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600
    assert made.bytes == made.path.stat().st_size
    assert made.sha256 == hashlib.sha256(made.path.read_bytes()).hexdigest()
    before = made.path.read_bytes()
    with pytest.raises(ex.ExportError, match="refusing to overwrite"):
        ex.export(TENANT, made.path)
    assert made.path.read_bytes() == before
    assert made.key_text not in repr(made) and made.key_text not in str(made)


# --- nothing in plaintext ------------------------------------------------------------------

def _canaries() -> dict[str, tuple[str, str]]:
    """Customer-visible values, with the exported table and column each comes from."""
    picks = {"raw_shop.products": "title", "marts.dim_variants": "sku",
             "insights.alerts": "message", "insights.opportunities": "explanation"}
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        return {conn.execute(f"select {column} from {table} where {column} is not null "
                             f"order by 1 limit 1").fetchone()[0]: (table, column)
                for table, column in picks.items()}


def test_archive_holds_no_plaintext_and_none_is_left_on_disk(env, made, files):
    canaries = _canaries()
    for value, (table, column) in canaries.items():  # the scan below looks for something real
        exported = pq.read_table(io.BytesIO(files[f"tables/{table}.parquet"]), columns=[column])
        assert value in exported.column(column).to_pylist()
    archive = made.path.read_bytes()
    assert archive.startswith(ex.MAGIC)
    assert b"PAR1" not in archive and b"ustar" not in archive and b"manifest.json" not in archive
    # data/, the requester's folder, and any project temp entry that appeared since the start.
    roots = [env.data, env.out, *(set(Path(tempfile.gettempdir()).glob("cleargro*")) - env.temp)]
    assert verify_at_rest.scan(roots, list(canaries)) == []
    leftovers = [p for root in roots for p in Path(root).rglob("*")
                 if p.is_file() and (p.suffix == ".parquet" or p.read_bytes()[:4] == b"PAR1")]
    assert leftovers == []
    assert all(p.read_bytes()[:8] == ex.MAGIC for p in env.out.iterdir())


def _files_under(*roots: Path) -> set[Path]:
    return {p for root in roots for p in root.rglob("*") if p.is_file()}


def test_export_writes_only_the_archive_its_registry_entry_and_the_audit_log(env, monkeypatch):
    """Every file Python opens for writing during an export, and every file that is new after
    it: the Parquet files and the tar stream only ever exist in memory."""
    before = _files_under(env.data, env.out)
    written: list[Path] = []
    real_os_open, real_open = os.open, io.open

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            written.append(Path(os.fsdecode(path)))
        return real_os_open(path, flags, *args, **kwargs)

    def py_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+"):
            written.append(Path(os.fsdecode(file)))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(io, "open", py_open)
    monkeypatch.setattr("builtins.open", py_open)
    made = ex.export(TENANT, env.out / "watched.cgx")
    monkeypatch.undo()

    registry = ex.registry_dir(TENANT)
    allowed = {made.path, paths().tenant_dir(TENANT) / "warehouse.lock"}
    unexpected = [p for p in written if p not in allowed and p.parent not in
                  (registry, paths().audit_log.parent)]
    assert unexpected == []
    assert made.path in written
    assert _files_under(env.data, env.out) - before == {made.path,
                                                       registry / f"{made.export_id}.json"}
    made.path.unlink()
    (registry / f"{made.export_id}.json").unlink()


def test_a_failed_export_leaves_nothing_behind(env, monkeypatch):
    before = _files_under(env.data, env.out)
    exports_before = len([e for e in audit.entries() if e["action"] == "export_created"])
    calls = []
    real = ex._table_parquet

    def failing(conn, qualified):
        calls.append(qualified)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(conn, qualified)

    monkeypatch.setattr(ex, "_table_parquet", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        ex.export(TENANT, env.out / "failed.cgx")
    assert not (env.out / "failed.cgx").exists()
    assert _files_under(env.data, env.out) - before == set()
    assert len([e for e in audit.entries() if e["action"] == "export_created"]) == exports_before


def test_the_key_is_never_written_down(env, made):
    key = ex.decode_key(made.key_text)
    forms = [made.key_text, made.key_text[len(ex.KEY_PREFIX):], key.hex(),
             base64.b64encode(key).decode()]
    log = paths().audit_log.read_text()
    assert not [f for f in forms if f in log]
    assert verify_at_rest.scan([env.data, env.out], forms) == []
    entry = [e for e in audit.entries() if e["action"] == "export_created"
             and e["detail"]["export_id"] == made.export_id][0]
    assert entry["tenant"] == TENANT and entry["purpose"] == "export"
    assert {k: entry["detail"][k] for k in ("tables", "rows", "bytes")} == \
        {"tables": made.tables, "rows": made.rows, "bytes": made.bytes}
    unwraps = [e for e in audit.entries() if e["action"] == "key_unwrapped"
               and e["purpose"] == "export"]
    assert unwraps  # reading the warehouse for an export is audited as such
    assert audit.verify().entries == len(audit.entries())


# --- tampering ------------------------------------------------------------------------------

def _variant(tmp_path: Path, data: bytes, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _fails(path: Path, key_text: str, tmp_path: Path) -> str:
    dest = tmp_path / f"dest-{path.name}"
    with pytest.raises(ex.ArchiveError) as raised:
        ex.decrypt(path, key_text, dest)
    assert not [p for p in dest.rglob("*") if p.is_file()]  # nothing half-written is left
    with pytest.raises(ex.ArchiveError) as again:
        ex.decrypt(path, key_text)
    assert str(again.value) == str(raised.value)
    assert key_text not in str(raised.value)
    return str(raised.value)


def test_wrong_or_malformed_key_is_refused_clearly(made, tmp_path):
    other = ex.encode_key(os.urandom(32))
    assert _fails(made.path, other, tmp_path) == ex.KEY_MISMATCH
    with pytest.raises(ex.ArchiveError, match="not a Cleargro export key") as raised:
        ex.decrypt(made.path, made.key_text[:-3])
    assert made.key_text[:-3] not in str(raised.value)
    with pytest.raises(ex.ArchiveError, match="not a Cleargro export key"):
        ex.decrypt(made.path, "hunter2")
    # Copy and paste may wrap the key: whitespace is ignored.
    wrapped = made.key_text[:20] + "\n  " + made.key_text[20:]
    assert set(ex.decrypt(made.path, wrapped)) >= {"manifest.json"}


def test_altered_archives_are_refused(made, tmp_path):
    data = made.path.read_bytes()
    sealed = ex.CHUNK_BYTES + ex.TAG_BYTES
    chunks = (len(data) - ex.HEADER_BYTES + sealed - 1) // sealed
    assert chunks >= 4, "the demo export spans several chunks"

    def flipped(offset: int) -> bytes:
        return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]

    key = made.key_text
    # A bit flipped in the header (authenticated by every chunk) or in the first chunk.
    assert _fails(_variant(tmp_path, flipped(15), "h.cgx"), key, tmp_path) == ex.KEY_MISMATCH
    assert _fails(_variant(tmp_path, flipped(ex.HEADER_BYTES + 7), "c0.cgx"), key,
                  tmp_path) == ex.KEY_MISMATCH
    # A bit flipped in the middle: the key is known right by then.
    third = ex.HEADER_BYTES + 2 * sealed
    message = _fails(_variant(tmp_path, flipped(third + 1000), "c2.cgx"), key, tmp_path)
    assert message.startswith("archive was altered: chunk 2") and "key is right" in message
    # In the final chunk's tag.
    message = _fails(_variant(tmp_path, flipped(len(data) - 1), "end.cgx"), key, tmp_path)
    assert "truncated or altered at its end" in message
    # Two chunks swapped.
    one = ex.HEADER_BYTES + sealed
    swapped = data[:one] + data[one + sealed:one + 2 * sealed] + data[one:one + sealed] + \
        data[one + 2 * sealed:]
    assert _fails(_variant(tmp_path, swapped, "swap.cgx"), key, tmp_path).startswith(
        "archive was altered: chunk 1")
    # Bytes appended.
    assert "altered" in _fails(_variant(tmp_path, data + b"\0" * 16, "tail.cgx"), key, tmp_path)
    # Not an archive at all.
    not_ours = _variant(tmp_path, b"PAR1" + data[4:64], "other.cgx")
    assert "not a Cleargro export archive" in _fails(not_ours, key, tmp_path)


def test_truncated_archives_are_refused(made, tmp_path):
    data = made.path.read_bytes()
    sealed = ex.CHUNK_BYTES + ex.TAG_BYTES
    key = made.key_text
    # Cut at a chunk boundary: every remaining chunk verifies, but none was sealed as the last.
    for kept in (1, 3):
        cut = _variant(tmp_path, data[:ex.HEADER_BYTES + kept * sealed], f"cut{kept}.cgx")
        assert _fails(cut, key, tmp_path) == (
            f"archive is truncated: it ends after chunk {kept - 1} "
            f"(byte {ex.HEADER_BYTES + kept * sealed}) without its final chunk")
    # Cut inside a chunk, or inside or right after the header.
    mid = _variant(tmp_path, data[:ex.HEADER_BYTES + 2 * sealed + 5000], "mid.cgx")
    assert "truncated or altered at its end" in _fails(mid, key, tmp_path)
    assert "truncated" in _fails(_variant(tmp_path, data[:ex.HEADER_BYTES], "hdr.cgx"), key,
                                 tmp_path)
    assert "header is incomplete" in _fails(_variant(tmp_path, data[:12], "h12.cgx"), key,
                                            tmp_path)
    assert "not a Cleargro export archive" in _fails(_variant(tmp_path, b"", "empty.cgx"), key,
                                                     tmp_path)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 32, 33, 100, 160])
@pytest.mark.parametrize("write", [1, 7, 16, 1000])
def test_stream_construction_round_trips_and_marks_the_last_chunk(size, write):
    key, chunk = os.urandom(32), 16
    plain = os.urandom(size)
    sink = io.BytesIO()
    writer = ex.EncryptingWriter(sink, key, chunk_size=chunk)
    for i in range(0, size, write):
        writer.write(plain[i:i + write])
    writer.close()
    sealed = sink.getvalue()
    chunks = max(1, -(-size // chunk))  # the final chunk is empty only when everything is
    assert len(sealed) == ex.HEADER_BYTES + size + chunks * ex.TAG_BYTES
    assert writer.sha256.hexdigest() == hashlib.sha256(sealed).hexdigest()
    assert ex.DecryptingReader(io.BytesIO(sealed), key).read() == plain
    # Dropping whole final chunks never passes for a shorter valid stream.
    for kept in range(1, chunks):
        cut = sealed[:ex.HEADER_BYTES + kept * (chunk + ex.TAG_BYTES)]
        with pytest.raises(ex.ArchiveError, match="truncated"):
            ex.DecryptingReader(io.BytesIO(cut), key).read()


# --- expiry -------------------------------------------------------------------------------

def _expired_entries(export_id: str) -> list[dict]:
    return [e for e in audit.entries()
            if e["action"] == "export_expired" and e["detail"]["export_id"] == export_id]


def test_exports_expire_after_seven_days(env, made):
    now = datetime.now(timezone.utc)
    old = ex.export(TENANT, env.out / "old.cgx", now=now - timedelta(days=8))
    changed = ex.export(TENANT, env.out / "changed.cgx", now=now - timedelta(days=8))
    gone = ex.export(TENANT, paths().data / "gone.cgx", now=now - timedelta(days=8))
    fresh = ex.export(TENANT, env.out / "fresh.cgx", now=now - timedelta(days=6))
    with open(changed.path, "ab") as f:  # someone reused the file: it is no longer ours
        f.write(b"notes")
    gone.path.unlink()
    registry = {p.stem for p in ex.registry_dir(TENANT).glob("*.json")}
    assert {old.export_id, changed.export_id, gone.export_id, fresh.export_id} <= registry

    # Not yet: the old ones expire 7 days after they were made, to the second.
    assert ex.purge_expired(now=old.expires_at - timedelta(seconds=1)) == []
    assert old.path.exists()

    expired = ex.purge_expired(now=now)
    assert set(expired) == {old.export_id, changed.export_id, gone.export_id}
    assert not old.path.exists()
    assert changed.path.exists()  # left in place, and why is on record
    assert fresh.path.exists() and made.path.exists()
    registry = {p.stem for p in ex.registry_dir(TENANT).glob("*.json")}
    assert registry.isdisjoint(expired) and {fresh.export_id, made.export_id} <= registry

    outcome = {i: _expired_entries(i)[0]["detail"] for i in expired}
    assert outcome[old.export_id]["outcome"] == "deleted"
    assert outcome[gone.export_id]["outcome"] == "already_gone"
    assert outcome[changed.export_id]["outcome"] == "kept"
    assert "no longer this export" in outcome[changed.export_id]["reason"]
    assert all(_expired_entries(i)[0]["tenant"] == TENANT for i in expired)
    assert not _expired_entries(fresh.export_id)

    assert ex.purge_expired(now=now) == []  # nothing twice
    assert ex.purge_expired(now=fresh.expires_at) == [fresh.export_id]
    assert not fresh.path.exists()
    assert made.path.exists()  # made "now" by the module fixture: still a week to go
    log = paths().audit_log.read_text()
    assert not [r.key_text for r in (old, changed, gone, fresh) if r.key_text in log]
    assert audit.verify().entries == len(audit.entries())


def test_registry_entry_is_private_and_describes_the_archive(env, made):
    entry_file = ex.registry_dir(TENANT) / f"{made.export_id}.json"
    entry = json.loads(entry_file.read_text())
    assert stat.S_IMODE(entry_file.stat().st_mode) == 0o600
    assert entry["path"] == str(made.path) and entry["size"] == made.bytes
    assert entry["sha256"] == made.sha256
    assert made.key_text not in entry_file.read_text()
