"""One-time, idempotent set-up of a machine: local demo key, DuckDB's httpfs, Dagster home, dbt manifest."""

from __future__ import annotations

import json
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from cleargro_pipeline import warehouse
from cleargro_pipeline.durable import write_atomic
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.security import keys
from cleargro_pipeline.settings import paths
from cleargro_pipeline.warehouse import dbt as tenant_dbt

DAGSTER_YAML_MARK = "# Written by `cleargro init`."


def dagster_yaml(home: Path) -> str:
    """The instance configuration of a DAGSTER_HOME at `home`."""
    events = json.dumps(str(home / "history" / "runs"))  # a YAML string, whatever the path
    return f"""\
{DAGSTER_YAML_MARK} Runs of one tenant queue behind each other (one writer per
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
# Dagster's SQLite event log (same files), without its per-event engine and checkpoint:
# cleargro_pipeline/orchestration/event_log.py.
event_log_storage:
  module: cleargro_pipeline.orchestration.event_log
  class: KeptEngineSqliteEventLogStorage
  config:
    base_dir: {events}
"""


def dagster_home() -> Path:
    """Point DAGSTER_HOME under data/ (unless set) and make sure it is configured."""
    home = paths().dagster_home
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    with _configuring(home):
        # A file `cleargro init` wrote is kept current; one written by hand is left alone.
        written = config.read_text() if config.exists() else DAGSTER_YAML_MARK
        if written.startswith(DAGSTER_YAML_MARK) and written != dagster_yaml(home):
            write_atomic(config, dagster_yaml(home).encode())
    return home


def dagster_instance() -> Any:
    """The DAGSTER_HOME instance as it is. Dagster's SQLite storages create their tables on first
    open without a lock: two processes opening a new home at once (two `cleargro run`s) would
    fail with "table runs already exists", so the opening holds the configuration lock."""
    # Dagster takes a second to import; bootstrap's other callers do not need it.
    import dagster as dg

    with _configuring(dagster_home()):
        return dg.DagsterInstance.get()


def _configuring(home: Path) -> AbstractContextManager[bool]:
    return file_lock(home / ".configure.lock")


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
