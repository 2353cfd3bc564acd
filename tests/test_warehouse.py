"""The encrypted warehouse: opening, refusing bad files and keys, serialising writers."""

import hashlib
import multiprocessing
import shutil

import duckdb
import pytest

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.security import audit
from cleargro_pipeline.settings import paths


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def filled(tenant):
    with warehouse.open_warehouse(tenant, purpose="ingest") as conn:
        conn.execute("create schema raw_shop")
        conn.execute("create table raw_shop.products as select range as id, 'Teal Linen Shirt ' || range as title from range(50000)")
    return paths().warehouse(tenant)


def test_file_is_encrypted_and_readable_with_the_key(filled, tenant):
    header = filled.read_bytes()[:32]
    assert header[8:12] == b"DUCK" and header[warehouse.ENCRYPTED_FLAG_OFFSET] == 1
    assert b"Teal Linen Shirt" not in filled.read_bytes()
    with warehouse.open_warehouse(tenant, purpose="query", read_only=True) as conn:
        assert conn.execute("select count(*) from raw_shop.products").fetchone()[0] == 50000
    with pytest.raises(duckdb.Error, match="without a key"):
        duckdb.connect().execute(f"ATTACH '{filled}' AS x (READ_ONLY)")


def test_readers_cannot_write_or_export(filled, tenant, tmp_path):
    with warehouse.open_warehouse(tenant, purpose="query", read_only=True) as conn:
        with pytest.raises(duckdb.Error):
            conn.execute("insert into raw_shop.products values (1, 'x')")
        with pytest.raises(duckdb.Error):
            conn.execute(f"copy raw_shop.products to '{tmp_path / 'out.csv'}'")
        with pytest.raises(duckdb.Error):
            conn.execute("set enable_external_access = true")
    assert not (tmp_path / "out.csv").exists()


def test_wrong_key_is_named_and_changes_nothing(filled, tenant):
    tenants.add("other")
    with warehouse.open_warehouse("other", purpose="ingest") as conn:
        conn.execute("create table t as select 1")
    # acme's file in other's place: other's key does not fit it.
    other_file = paths().warehouse("other")
    shutil.copy(filled, other_file)
    before = _digest(other_file)
    with pytest.raises(warehouse.WarehouseError, match="tenant 'other'.*wrong data key"):
        with warehouse.open_warehouse("other", purpose="ingest"):
            pass
    assert _digest(other_file) == before


def test_missing_key_is_named(filled, tenant):
    (paths().registry / tenant / "keys.json").unlink()
    with pytest.raises(warehouse.WarehouseError, match="tenant 'acme'.*no data key is stored"):
        with warehouse.open_warehouse(tenant, purpose="query", read_only=True):
            pass


def test_unknown_tenant_is_named(data_dir):
    with pytest.raises(tenants.UnknownTenant, match="unknown tenant 'ghost'"):
        with warehouse.open_warehouse("ghost", purpose="query"):
            pass
    assert not paths().warehouse("ghost").exists()


def test_invalid_tenant_name_is_refused(data_dir):
    with pytest.raises(tenants.InvalidTenantName):
        with warehouse.open_warehouse("../etc", purpose="query"):
            pass


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:5000], "truncated"),
    (lambda b: b[:len(b) - 100_000], "truncated"),
    (lambda b: b[:8] + b"XXXX" + b[12:], "corrupted \\(no DuckDB header\\)"),
    (lambda b: b[:4096] + bytes(8192) + b[12288:], "corrupted or truncated"),
])
def test_damaged_file_is_refused_and_left_as_is(filled, tenant, damage, message):
    filled.write_bytes(damage(filled.read_bytes()))
    before = _digest(filled)
    for read_only in (True, False):
        with pytest.raises(warehouse.WarehouseError, match=f"tenant 'acme'.*{message}"):
            with warehouse.open_warehouse(tenant, purpose="ingest", read_only=read_only):
                pass
        assert _digest(filled) == before


def test_plaintext_file_is_refused(tenant):
    target = paths().warehouse(tenant)
    target.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(target)).execute("create table t as select 1").close()
    with pytest.raises(warehouse.WarehouseError, match="not encrypted"):
        with warehouse.open_warehouse(tenant, purpose="ingest"):
            pass


def test_reader_of_a_tenant_without_warehouse_gets_a_hint(tenant):
    with pytest.raises(warehouse.WarehouseError, match="has no warehouse yet"):
        with warehouse.open_warehouse(tenant, purpose="query", read_only=True):
            pass


def test_key_is_not_visible_to_queries_errors_or_audit(filled, tenant):
    from cleargro_pipeline.security import keys
    from cleargro_pipeline.warehouse import queries
    key_hex = keys.unwrap_tenant_key(tenant, "data", "test").hex()
    for catalog in ("duckdb_databases()", "duckdb_settings()"):
        assert key_hex not in str(queries.analyst_query(tenant, f"select * from {catalog}").rows())
    with pytest.raises(duckdb.Error) as raised:
        queries.analyst_query(tenant, "select no_such_column from raw_shop.products")
    assert key_hex not in str(raised.value)
    assert key_hex not in paths().audit_log.read_text()


def _writer(data_dir, master_key, tenant, n):
    import os
    os.environ.update({"CLEARGRO_DATA_DIR": data_dir, "CLEARGRO_MASTER_KEY": master_key})
    for i in range(n):
        with warehouse.open_warehouse(tenant, purpose="ingest") as conn:
            conn.execute("create table if not exists hits (pid int, i int)")
            conn.execute("insert into hits values (?, ?)", [os.getpid(), i])


def test_writers_of_one_tenant_queue_and_tenants_run_in_parallel(tenant, data_dir, monkeypatch):
    import os
    tenants.add("beta")
    ctx = multiprocessing.get_context("spawn")
    args = (str(data_dir), os.environ["CLEARGRO_MASTER_KEY"])
    procs = [ctx.Process(target=_writer, args=(*args, t, 8)) for t in ("acme", "acme", "acme", "beta")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with warehouse.open_warehouse("acme", purpose="query", read_only=True) as conn:
        assert conn.execute("select count(*), count(distinct pid) from hits").fetchone() == (24, 3)
    with warehouse.open_warehouse("beta", purpose="query", read_only=True) as conn:
        assert conn.execute("select count(*) from hits").fetchone()[0] == 8
    assert sum(e["action"] == "key_unwrapped" for e in audit.entries()) >= 32


def test_writer_clears_spill_files_a_killed_process_left(filled, tenant):
    # A process that dies without closing DuckDB leaves spill files; DuckDB would then refuse
    # to enable temp-file encryption. The next writer clears them; nothing else stays behind.
    leftover = paths().tenant_tmp(tenant) / "dead-process"
    leftover.mkdir(parents=True)
    (leftover / "duckdb_temp_storage_DEFAULT-0.tmp").write_bytes(b"\0" * 4096)
    with warehouse.open_warehouse(tenant, purpose="ingest") as conn:
        assert conn.execute("select current_setting('temp_file_encryption')").fetchone()[0]
    assert list(paths().tenant_tmp(tenant).iterdir()) == []


def test_rewrite_drops_deleted_bytes_and_keeps_live_data(tenant):
    from cleargro_pipeline.settings import paths

    with warehouse.open_warehouse(tenant, purpose="test") as conn:
        conn.execute("create schema raw_shop")
        conn.execute("create table raw_shop.customers as select range as id, "
                     "'shopper-' || range || '-canary' as note from range(5000)")
        conn.execute("delete from raw_shop.customers where id = 1234")
    size = warehouse.rewrite(tenant, purpose="test")
    assert 0 < size and paths().warehouse(tenant).exists()
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        assert conn.execute("select count(*), sum(id) from raw_shop.customers").fetchone() == \
            (4999, sum(range(5000)) - 1234)
    assert not list(paths().tenant_dir(tenant).glob("*.rewrite*"))
    warehouse.check_file(tenant, paths().warehouse(tenant))  # still encrypted


def test_wrong_key_is_a_type_callers_can_catch(filled, tenant):
    tenants.add("other")
    other_file = paths().warehouse("other")
    other_file.parent.mkdir(parents=True)
    shutil.copy(filled, other_file)
    with pytest.raises(warehouse.WrongKey):
        with warehouse.open_warehouse("other", purpose="query", read_only=True):
            pass


def test_exists_and_a_failed_transaction_leaves_nothing(tenant):
    assert not warehouse.exists(tenant)
    with warehouse.open_warehouse(tenant, purpose="test") as conn:
        conn.execute("create table t (i int)")
        with pytest.raises(ZeroDivisionError):
            with warehouse.transaction(conn):
                conn.execute("insert into t values (1)")
                1 / 0
        with warehouse.transaction(conn):
            conn.execute("insert into t values (2)")
        assert conn.execute("select list(i) from t").fetchone()[0] == [2]
    assert warehouse.exists(tenant)


def test_deletion_waits_for_writers_and_readers_for_the_time_configured_now(filled, tenant,
                                                                           monkeypatch):
    monkeypatch.setenv("CLEARGRO_LOCK_TIMEOUT_S", "0")  # read when used, never at import
    with warehouse.open_warehouse(tenant, purpose="query", read_only=True):
        with pytest.raises(warehouse.WarehouseError, match="busy"):
            with warehouse.wait_for_writers(tenant):
                pass
    with warehouse.wait_for_writers(tenant) as held:
        assert held
        with pytest.raises(warehouse.WarehouseError, match="busy"):
            with warehouse.open_warehouse(tenant, purpose="query", read_only=True):
                pass
    tenants.add("fresh")  # no warehouse, no lock file: nothing to wait for, nothing created
    with warehouse.wait_for_writers("fresh") as held:
        assert not held
    assert not paths().tenant_dir("fresh").exists()
