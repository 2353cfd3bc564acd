"""`make bench`: ingest throughput against raw DuckDB, end-to-end time and peak memory.

Ends with one line:
    bench: ingest_vs_duckdb=<ratio> e2e_<size>_s=<seconds> peak_rss_mb=<MB>
The ratio compares the project's bulk ingest rate (minimise + dlt normalise + merge load
into an encrypted warehouse) with a raw DuckDB `CREATE TABLE AS` of the same Arrow tables
into an encrypted file, both measured in this run on the same data.
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa

BENCH_TABLES = (("raw_shop", "orders"), ("raw_shop", "order_line_items"))


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _bench_tables(size: str) -> dict[tuple[str, str], pa.Table]:
    from cleargro_pipeline.demo.generator import DemoShop

    shop = DemoShop(size=size)
    return {key: pa.concat_tables(list(shop.iter_table(*key))) for key in BENCH_TABLES}


def _raw_duckdb_rate(tables: dict[tuple[str, str], pa.Table], folder: Path) -> float:
    conn = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    conn.execute("LOAD httpfs")
    conn.execute(f"ATTACH '{folder / 'raw.duckdb'}' AS b (ENCRYPTION_KEY '{os.urandom(32).hex()}')")
    rows, started = 0, time.perf_counter()
    for (_, name), table in tables.items():
        conn.register("arrow_in", table)
        conn.execute(f"CREATE TABLE b.main.{name} AS SELECT * FROM arrow_in")
        conn.unregister("arrow_in")
        rows += table.num_rows
    conn.execute("CHECKPOINT b")
    elapsed = time.perf_counter() - started
    conn.close()
    return rows / elapsed


def _project_ingest_rate(tables: dict[tuple[str, str], pa.Table]) -> float:
    from cleargro_pipeline import ingest, tenants, warehouse
    from cleargro_pipeline.settings import paths
    from cleargro_pipeline.sources.raw import provider_from_mapping

    tenants.add("bench_ingest")
    work_dir = paths().tenant_work("bench_ingest") / "dlt" / "bench"
    ingest.configure_dlt(work_dir)
    pseudonymise = ingest.tenant_pseudonymiser("bench_ingest")
    rows = sum(t.num_rows for t in tables.values())
    started = time.perf_counter()
    try:
        with warehouse.open_warehouse("bench_ingest", purpose="ingest") as conn:
            ingest.load_system(conn, "shop", provider_from_mapping(tables), pseudonymise,
                               incremental=False, work_dir=work_dir, tenant="bench_ingest")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return rows / (time.perf_counter() - started)


def _end_to_end_seconds(size: str) -> float:
    from cleargro_pipeline import tenants
    from cleargro_pipeline.orchestration.runner import materialize_tenant

    tenants.add("bench_e2e", {s: {"kind": "demo", "size": size, "seed": 7}
                              for s in tenants.SOURCE_NAMES})
    started = time.perf_counter()
    materialize_tenant("bench_e2e")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cleargro-bench-"))
    os.environ.update({"CLEARGRO_DATA_DIR": str(scratch / "data"),
                       "DAGSTER_HOME": str(scratch / "data" / "dagster_home"),
                       "CLEARGRO_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()})
    try:
        tables = _bench_tables(args.size)
        rows = sum(t.num_rows for t in tables.values())
        duckdb_rate = _raw_duckdb_rate(tables, scratch)
        project_rate = _project_ingest_rate(tables)
        del tables
        print(f"ingest of {rows:,} rows: project {project_rate:,.0f} rows/s, "
              f"raw DuckDB CTAS {duckdb_rate:,.0f} rows/s")
        e2e = _end_to_end_seconds(args.size)
        print(f"bench: ingest_vs_duckdb={project_rate / duckdb_rate:.2f} "
              f"e2e_{args.size}_s={e2e:.1f} peak_rss_mb={_peak_rss_mb():.0f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
