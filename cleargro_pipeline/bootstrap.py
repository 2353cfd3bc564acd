"""One-time, idempotent set-up of a machine: local demo key, DuckDB's httpfs, Dagster home, dbt manifest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cleargro_pipeline import warehouse
from cleargro_pipeline.security import keys
from cleargro_pipeline.settings import DBT_PROJECT_DIR, paths

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


def dbt_manifest(force: bool = False) -> Path:
    """Parse the dbt project so Dagster can read its manifest (no warehouse is opened)."""
    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    if manifest.exists() and not force and not _dbt_sources_newer_than(manifest):
        return manifest
    # Parsing renders the profile but never connects: placeholders satisfy env_var().
    env = {**os.environ, warehouse.DBT_PATH_ENV: "/nonexistent/parse-only.duckdb",
           warehouse.DBT_KEY_ENV: "parse-only", warehouse.DBT_TEMP_ENV: "/nonexistent",
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = Path(sys.executable).with_name("dbt")
    subprocess.run([str(dbt), "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
                    "--profiles-dir", str(DBT_PROJECT_DIR), "--target", "tenant"],
                   env=env, check=True, cwd=DBT_PROJECT_DIR)
    return manifest


def _dbt_sources_newer_than(manifest: Path) -> bool:
    built = manifest.stat().st_mtime
    return any(p.stat().st_mtime > built for p in DBT_PROJECT_DIR.rglob("*")
               if p.suffix in (".sql", ".yml") and "target" not in p.parts and p.is_file())


def init() -> dict[str, str]:
    key_file = keys.ensure_local_master_key()
    extension = warehouse.ensure_httpfs()
    home = dagster_home()
    manifest = dbt_manifest()
    return {
        "master key": str(key_file) if key_file else f"from {keys.MASTER_KEY_ENV}",
        "httpfs": str(extension),
        "DAGSTER_HOME": str(home),
        "dbt manifest": str(manifest),
    }
