"""One-time, idempotent set-up of a machine: local demo key, DuckDB's httpfs, Dagster home, dbt manifest."""

from __future__ import annotations

import os
from pathlib import Path

from cleargro_pipeline import warehouse
from cleargro_pipeline.security import keys
from cleargro_pipeline.settings import paths
from cleargro_pipeline.warehouse import dbt as tenant_dbt

DAGSTER_YAML = f"""\
# Written by `cleargro init`. Runs of one tenant queue behind each other (one writer per
# warehouse file); different tenants run in parallel.
telemetry:
  enabled: false
# Each run is its own process, forked from a zygote that already has the code location and
# dbt's parsed project loaded (cleargro_pipeline/orchestration/launcher.py): no cold interpreter.
run_launcher:
  module: cleargro_pipeline.orchestration.launcher
  class: WarmRunLauncher
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    # A tenant's run is CPU-bound (dlt, DuckDB, dbt) with short waits (fsync, locks, events):
    # one run per core plus one keeps every core busy; more adds memory, not throughput.
    max_concurrent_runs: {(os.cpu_count() or 1) + 1}
    # Small tenants' runs take seconds: look for a free slot every second, not every five.
    dequeue_interval_seconds: 1
    tag_concurrency_limits:
      - key: "cleargro/tenant"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
# A run whose worker died (killed, out of memory) is marked failed, which frees its tenant's
# queue slot; a run being terminated that does not stop is marked canceled.
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
"""


def dagster_home() -> Path:
    """Point DAGSTER_HOME under data/ (unless set) and make sure it is configured."""
    home = paths().dagster_home
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def init() -> dict[str, str]:
    key_file = keys.ensure_local_master_key()
    extension = warehouse.ensure_httpfs()
    home = dagster_home()
    manifest = tenant_dbt.parse()
    return {
        "master key": str(key_file) if key_file else f"from {keys.MASTER_KEY_ENV}",
        "httpfs": str(extension),
        "DAGSTER_HOME": str(home),
        "dbt manifest": str(manifest),
    }
