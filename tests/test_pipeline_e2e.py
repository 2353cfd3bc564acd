"""The demo tenant end to end through Dagster: real dlt loads into a real encrypted file,
real dbt builds, real materializations in a real Dagster instance; then the at-rest proof
after a good run, a run that fails mid-load and a loader killed with SIGKILL mid-load."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest

from cleargro_pipeline import bootstrap, ingest, tenants, warehouse
from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.runner import RunFailed, materialize_tenant
from cleargro_pipeline.security import keys, verify_at_rest
from cleargro_pipeline.settings import paths
from cleargro_pipeline.warehouse import dbt as tenant_dbt

PRIMARY_KEYS = {
    "raw_shop.orders": "id", "raw_shop.order_line_items": "id",
    "raw_shop.product_variants": "id", "raw_ga4.items_daily": "date, item_id",
    "raw_google_ads.campaign_daily": "segments_date, campaign_id",
    "marts.fct_orders": "order_id", "marts.fct_order_lines": "order_line_id",
}


@pytest.fixture
def demo(data_dir):
    bootstrap.init()
    tenants.add("demo", {s: {"kind": "demo", "size": "small", "seed": 7}
                         for s in tenants.SOURCE_NAMES})
    return "demo"


@pytest.fixture(scope="module")
def canaries() -> list[str]:
    """A product title, a SKU and a shopper email of the demo shop."""
    shop = DemoShop(size="small")
    products = next(shop.iter_table("raw_shop", "products"))
    variants = next(shop.iter_table("raw_shop", "product_variants"))
    orders = next(shop.iter_table("raw_shop", "orders"))
    email = pc.drop_null(orders.column("email"))[0].as_py()
    return [products.column("title")[0].as_py(), variants.column("sku")[0].as_py(), email]


def _scan(canaries):
    # dbt's parse artefacts (the project's target/) are shared by every tenant: no value may
    # reach them.
    roots = verify_at_rest.default_roots(paths().data, extra=[
        paths().dagster_home, paths().work, tenant_dbt.MANIFEST.parent])
    return verify_at_rest.scan(roots, canaries)


def _counts(tenant):
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        return {t: conn.execute(f"select count(*), count(distinct ({k})) from {t}").fetchone()
                for t, k in PRIMARY_KEYS.items()}


def _assert_no_duplicates(counts):
    for table, (rows, distinct) in counts.items():
        assert rows > 0 and rows == distinct, f"{table}: {rows} rows, {distinct} distinct keys"


def test_demo_tenant_end_to_end(demo, canaries):
    summary = materialize_tenant(demo)
    counts = _counts(demo)
    _assert_no_duplicates(counts)
    shop = DemoShop(size="small")
    expected_orders = sum(t.num_rows for t in shop.iter_table("raw_shop", "orders"))
    assert counts["raw_shop.orders"][0] == expected_orders

    instance = dg.DagsterInstance.get()
    run = instance.get_run_by_id(summary.run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["cleargro/tenant"] == demo
    for key in (["raw_shop", "orders"], ["marts", "fct_daily_sales"], ["staging", "stg_shop__orders"]):
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert event is not None and event.dagster_event.partition == demo, key
    checks = [r for r in instance.get_records_for_run(summary.run_id).records
              if r.event_log_entry.dagster_event
              and r.event_log_entry.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert checks, "dbt tests ran as asset checks"
    assert all(r.event_log_entry.dagster_event.event_specific_data.passed for r in checks)

    # Neither the tenant's data key nor the master key is written anywhere (dbt's argv and
    # logs, Dagster's event and compute logs, the audit log).
    secrets = [keys.unwrap_tenant_key(demo, "data", "test").hex(), os.environ[keys.MASTER_KEY_ENV]]
    assert _scan(canaries + secrets) == []
    assert not list((paths().work / demo).rglob("*.parquet"))

    # A second run loads nothing twice.
    materialize_tenant(demo)
    assert _counts(demo) == counts


def test_run_failing_mid_load_leaves_nothing_and_reruns_clean(demo, canaries, monkeypatch):
    monkeypatch.setenv(ingest.FAULT_ENV, "fail:shop")
    with pytest.raises(RunFailed, match="load_raw"):
        materialize_tenant(demo)
    assert _scan(canaries) == []
    # The failing system stops neither the other systems' loads nor loses what they loaded.
    with warehouse.open_warehouse(demo, purpose="test", read_only=True) as conn:
        loaded = {schema for (schema,) in conn.execute(
            "select distinct schema_name from duckdb_tables() where database_name = ?",
            [warehouse.ALIAS]).fetchall()}
    assert {"raw_ga4", "raw_google_ads", "raw_app"} <= loaded and "raw_shop" not in loaded
    monkeypatch.delenv(ingest.FAULT_ENV)
    materialize_tenant(demo)
    _assert_no_duplicates(_counts(demo))
    assert _scan(canaries) == []


def _cleargro(*args, env=None):
    return subprocess.Popen([str(Path(sys.executable).with_name("cleargro")), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_loader_killed_mid_load_leaves_nothing_and_reruns_clean(demo, canaries, tmp_path):
    # The ga4 loader stalls with its normalised rows on disk, then is killed like the OOM killer would.
    marker = tmp_path / "stalled.pid"
    env = {**os.environ, ingest.FAULT_ENV: "stall:ga4", "CLEARGRO_TEST_STALL_MARKER": str(marker)}
    run = _cleargro("run", "--tenant", demo, env=env)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert run.poll() is None, run.stdout.read()
            assert time.monotonic() < deadline, "loader never reached the stall point"
            time.sleep(0.2)
        exposed = verify_at_rest.scan([paths().work], canaries)
        assert exposed, "the kill must happen while plaintext load files exist"
        os.kill(int(marker.read_text()), signal.SIGKILL)
        output, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:  # a failed assertion must not leave a stalled loader running
            run.kill()
            if marker.exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(marker.read_text()), signal.SIGKILL)
    assert run.returncode != 0
    assert "killed by signal SIGKILL" in output
    assert _scan(canaries) == []

    rerun = _cleargro("run", "--tenant", demo)
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, output
    _assert_no_duplicates(_counts(demo))
    assert _scan(canaries) == []


def test_two_runs_of_one_tenant_at_once_take_turns(demo):
    # Outside the run queue (`cleargro run` twice at once, as an operator might), the tenant's
    # writer lock makes the two runs' loaders and dbt builds take turns instead of failing on
    # DuckDB's single-writer file lock, and nothing is loaded twice.
    runs = [_cleargro("run", "--tenant", demo) for _ in range(2)]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    _assert_no_duplicates(_counts(demo))
