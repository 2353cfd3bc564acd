"""`make bench`: ingest throughput against raw DuckDB, end-to-end time and peak memory.
It ends with one line, `bench: ingest_vs_duckdb=<ratio> e2e_<size>_s=<seconds>
peak_rss_mb=<MB> dbt_full_s=<s> dbt_daily_s=<s> model_queries_full_s=<s>
model_queries_daily_s=<s> small_next_day_s=<s> shopify_rows_per_s=<r> shopify_vs_duckdb=<r>
shopify_loader_mb=<MB> ga4_rows_per_s=<r> ga4_vs_duckdb=<r> google_ads_rows_per_s=<r>
google_ads_vs_duckdb=<r>`: the project's bulk ingest rate
(minimise + dlt extract, normalise and load into an encrypted warehouse) over a raw DuckDB
`CREATE TABLE AS` of the same Arrow tables (every raw table of the demo shop) into an
encrypted file, both measured in this run,
three times each, medians compared; `cleargro run` of a fresh demo tenant of that size and the
peak RSS of its largest process (loader, dbt, Dagster); the dbt step of that run (two years of
history) and of the next day's run (one day of new rows); and the models' own query times in
those steps, without dbt's start-up, parsing and tests (incremental models make the daily one
small); a small tenant's next-day refresh through the Dagster instance as the schedule
runs it (daemon, run queue, run launcher), from the run's submission to its end; and the live
Shopify source's first sync of the same shop through the fake Shopify (bulk operations, JSONL
to Arrow to the encrypted warehouse), against raw DuckDB on the same tables, with the loader's
peak memory above what it was forked with; and the same for the GA4 and Google Ads sources
through their fakes (benchmarks/google.py).
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa

from cleargro_pipeline import ingest, tenants, warehouse
from cleargro_pipeline.benchmarks import google as google_bench
from cleargro_pipeline.benchmarks import shopify as shopify_bench
from cleargro_pipeline.benchmarks.instance import (running_daemon, schedule_driver,
                                                   submit_schedule_tick, wait_for_runs)
from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.security import keys
from cleargro_pipeline.settings import paths
from cleargro_pipeline.sources.raw import provider_from_mapping

ATTEMPTS = 3


def _children_peak_rss_mb() -> float:
    """Largest resident set of any finished child process (and their children)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _bench_tables(size: str) -> dict[tuple[str, str], pa.Table]:
    """Every raw table of the demo shop, generated once and held in memory as Arrow."""
    shop = DemoShop(size=size)
    return {key: pa.concat_tables(list(shop.iter_table(*key))) for key in shop.table_keys()}


def _raw_duckdb_rate(tables: dict[tuple[str, str], pa.Table], folder: Path,
                     attempt: int | str) -> float:
    conn = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    conn.execute("LOAD httpfs")
    target = folder / f"raw-{attempt}.duckdb"
    conn.execute(f"ATTACH '{target}' AS b (ENCRYPTION_KEY '{os.urandom(32).hex()}')")
    rows, started = 0, time.perf_counter()
    for (dataset, name), table in tables.items():
        conn.register("arrow_in", table)
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS b.{dataset}")
        conn.execute(f"CREATE TABLE b.{dataset}.{name} AS SELECT * FROM arrow_in")
        conn.unregister("arrow_in")
        rows += table.num_rows
    conn.execute("CHECKPOINT b")
    elapsed = time.perf_counter() - started
    conn.close()
    target.unlink()
    return rows / elapsed


def _project_ingest_rate(tables: dict[tuple[str, str], pa.Table], attempt: int) -> float:
    """The loader's own path, in process: minimise, dlt extract/normalise/load, checkpoint."""
    tenant = f"bench_ingest_{attempt}"
    tenants.add(tenant)
    work_dir = paths().tenant_work(tenant) / "dlt" / "bench"
    ingest.configure_dlt(work_dir)
    rows = sum(t.num_rows for t in tables.values())
    started = time.perf_counter()
    try:
        pseudonymise = keys.pseudonymiser(tenant, "ingest")
        with warehouse.open_warehouse(tenant, purpose="ingest") as conn:
            for system in ingest.SYSTEMS:
                report = ingest.load_system(conn, system, provider_from_mapping(tables),
                                            pseudonymise, incremental=False, work_dir=work_dir,
                                            tenant=tenant)
                print(f"  attempt {attempt} {system}: {sum(report.rows.values()):,} rows, "
                      f"{report.phase_seconds}")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    shutil.rmtree(paths().tenant_dir(tenant), ignore_errors=True)
    return rows / elapsed


def _cleargro_run(tenant: str) -> tuple[float, dict[str, float]]:
    """`cleargro run` as its own process; its wall time and seconds per step."""
    cleargro = str(Path(sys.executable).with_name("cleargro"))
    started = time.perf_counter()
    run = subprocess.run([cleargro, "run", "--tenant", tenant], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if run.returncode:
        raise SystemExit(f"bench: run of {tenant} failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    steps = {step: float(seconds) for step, seconds in (
        line.strip().rstrip(" s").split(": ") for line in run.stdout.splitlines()
        if line.startswith("  ") and ": " in line)}
    run_id = run.stdout.split("run ", 1)[1].split()[0]
    return elapsed, steps, _model_query_seconds(run_id)


def _model_query_seconds(run_id: str) -> dict[str, float]:
    """Seconds of each model's own query (dagster-dbt records them): the part of a run that
    grows with data, without dbt's start-up, parsing and tests."""
    with dg.DagsterInstance.get() as instance:
        records = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000).records
    materializations = [r.event_log_entry.dagster_event.event_specific_data.materialization
                        for r in records]
    return {m.asset_key.to_user_string(): m.metadata["Execution Duration"].value
            for m in materializations if "Execution Duration" in m.metadata}


def _end_to_end_and_daily(size: str) -> tuple[float, dict[str, float], dict[str, float]]:
    """A fresh demo tenant synced as of the day before (generation, loads, every dbt model
    and test, recorded in the Dagster instance), then the next day's run: only that day's
    rows arrive, so the second run's dbt time shows what a daily run costs."""
    tenants.add("bench_e2e", tenants.demo_sources(size, hold_back_days=1))
    e2e, first_steps, first_models = _cleargro_run("bench_e2e")
    for system, config in tenants.demo_sources(size).items():
        tenants.configure_source("bench_e2e", system, config)
    _, daily_steps, daily_models = _cleargro_run("bench_e2e")
    for label, steps in (("first run (history up to the day before)", first_steps),
                         ("daily run (one new day)", daily_steps)):
        print(f"{label}: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in steps.items()))
    print("slowest model queries, first run -> daily run:")
    for model in sorted(first_models, key=first_models.get, reverse=True)[:6]:
        print(f"  {model}: {first_models[model]:.2f} s -> {daily_models.get(model, 0):.2f} s")
    first_steps["dbt_model_queries"] = sum(first_models.values())
    daily_steps["dbt_model_queries"] = sum(daily_models.values())
    return e2e, first_steps, daily_steps


def _small_next_day_s() -> float:
    """A small tenant's next-day refresh as the schedule runs it: a real daemon on `cleargro
    init`'s dagster.yaml dequeues the run that `daily_tenant_refresh` requests and launches it
    with `WarmRunLauncher`; seconds from the run's submission to its end. The tenant's history
    up to the day before is loaded first (not timed), and one run of the tenant with nothing
    new goes before the timed one, so the launcher's zygote is warm as in a running daemon."""
    tenant = "bench_small"
    tenants.add(tenant, tenants.demo_sources("small", hold_back_days=1))
    _cleargro_run(tenant)
    first_tick = datetime(2026, 11, 28, 4, tzinfo=timezone.utc)
    with running_daemon(Path(os.environ["DAGSTER_HOME"])), schedule_driver() as driver:
        warm_up = submit_schedule_tick(driver, first_tick, tenants=[tenant])
        wait_for_runs(driver.instance, warm_up)
        for system, config in tenants.demo_sources("small").items():
            tenants.configure_source(tenant, system, config)
        timed = submit_schedule_tick(driver, first_tick + timedelta(days=1), tenants=[tenant])
        (outcome,) = wait_for_runs(driver.instance, timed)
    if not outcome.ok:
        raise SystemExit(f"bench: the next-day run of {tenant} ended {outcome.status}")
    print(f"small tenant next day through the instance: {outcome.wall_s:.1f} s from submission "
          f"({outcome.queued_s:.1f} s to start, {outcome.run_s:.1f} s running)")
    return outcome.wall_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cleargro-bench-"))
    os.environ.update({"CLEARGRO_DATA_DIR": str(scratch / "data"),
                       "DAGSTER_HOME": str(scratch / "data" / "dagster_home"),
                       "CLEARGRO_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()})
    try:
        e2e, first_steps, daily_steps = _end_to_end_and_daily(args.size)
        peak_rss = _children_peak_rss_mb()  # before the daemon below adds its processes
        small_next_day = _small_next_day_s()
        tables = _bench_tables(args.size)
        rows = sum(t.num_rows for t in tables.values())
        # Alternate the two, three times each, and compare medians: one machine hiccup
        # must not decide the ratio.
        duckdb_rates, project_rates = [], []
        for attempt in range(ATTEMPTS):
            duckdb_rates.append(_raw_duckdb_rate(tables, scratch, attempt))
            project_rates.append(_project_ingest_rate(tables, attempt))
        duckdb_rate, project_rate = statistics.median(duckdb_rates), statistics.median(project_rates)
        shop_tables = {key: tables[key] for key in tables if key[1] in shopify_bench.TABLES}
        shop_duckdb_rate = statistics.median(
            _raw_duckdb_rate(shop_tables, scratch, f"shop-{attempt}") for attempt in range(ATTEMPTS))
        google_duckdb_rates = {source: statistics.median(
            _raw_duckdb_rate({k: t for k, t in tables.items() if k[0] == f"raw_{source}"},
                             scratch, f"{source}-{attempt}") for attempt in range(ATTEMPTS))
            for source in google_bench.SOURCES}
        del tables, shop_tables
        shop_sync = shopify_bench.full_sync(args.size, ingest.DemoPlan().end_date)
        google_syncs = google_bench.full_syncs(args.size, ingest.DemoPlan().end_date)
        shop_mb = shop_sync.loader_memory_mb
        print(f"ingest of {rows:,} rows (median of {ATTEMPTS}): project {project_rate:,.0f} rows/s, "
              f"raw DuckDB CTAS {duckdb_rate:,.0f} rows/s")
        print(f"shopify full sync: {shop_sync.rows:,} rows in {shop_sync.seconds:.1f} s "
              f"({shop_sync.rows_per_s:,.0f} rows/s; raw DuckDB on those tables "
              f"{shop_duckdb_rate:,.0f} rows/s), loader memory +{shop_mb:.0f} MB")
        for source, sync in google_syncs.items():
            print(f"{source} full sync: {sync.rows:,} rows in {sync.seconds:.1f} s "
                  f"({sync.rows_per_s:,.0f} rows/s; raw DuckDB on those tables "
                  f"{google_duckdb_rates[source]:,.0f} rows/s), loader memory "
                  f"+{sync.loader_memory_mb:.0f} MB")
        google_line = " ".join(
            f"{source}_rows_per_s={sync.rows_per_s:.0f} "
            f"{source}_vs_duckdb={sync.rows_per_s / google_duckdb_rates[source]:.3f}"
            for source, sync in google_syncs.items())
        print(f"bench: ingest_vs_duckdb={project_rate / duckdb_rate:.2f} "
              f"e2e_{args.size}_s={e2e:.1f} peak_rss_mb={peak_rss:.0f} "
              f"dbt_full_s={first_steps['dbt_models']:.1f} dbt_daily_s={daily_steps['dbt_models']:.1f} "
              f"model_queries_full_s={first_steps['dbt_model_queries']:.1f} "
              f"model_queries_daily_s={daily_steps['dbt_model_queries']:.1f} "
              f"small_next_day_s={small_next_day:.1f} "
              f"shopify_rows_per_s={shop_sync.rows_per_s:.0f} "
              f"shopify_vs_duckdb={shop_sync.rows_per_s / shop_duckdb_rate:.3f} "
              f"shopify_loader_mb={shop_mb:.0f} {google_line}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
