"""One-time, idempotent set-up of a machine: local demo key, DuckDB's httpfs, Dagster home, dbt manifest."""

from __future__ import annotations

import os
from pathlib import Path

from cleargro_pipeline import warehouse
from cleargro_pipeline.security import keys
from cleargro_pipeline.settings import paths
from cleargro_pipeline.warehouse import dbt as tenant_dbt

DAGSTER_YAML = """\
# Written by `cleargro init`. Runs of one tenant queue behind each other (one writer per
# warehouse file); different tenants run in parallel.
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: "cleargro/tenant"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
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
