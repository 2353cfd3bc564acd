"""The one path to dbt: every dbt process of a tenant starts here, and so does the parse.

A tenant's dbt process (the Dagster asset, `cleargro dbt`, shopper erasure, retention,
disconnect, the tests) runs under the tenant's writer lock with the data key in the child's
environment only (never argv, never this process's `os.environ`: dbt's profile reads it with
`env_var()`, and dbt masks `DBT_ENV_SECRET_*` values in its logs). Its target/ and logs go to a
per-run folder under `data/work/<tenant>/dbt/` that is removed when the run ends. `parse` writes
the manifest Dagster reads, with placeholder connection values: parsing opens no warehouse.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from cleargro_pipeline import tenants
from cleargro_pipeline.settings import DBT_PROJECT_DIR, paths
from cleargro_pipeline.warehouse.connection import external_writer

# dbt of this interpreter's environment, whatever PATH says.
EXECUTABLE = Path(sys.executable).with_name("dbt")
PROJECT_DIR = DBT_PROJECT_DIR
PROFILES_DIR = DBT_PROJECT_DIR
TARGET = "tenant"
MANIFEST = PROJECT_DIR / "target" / "manifest.json"
PARTIAL_PARSE = PROJECT_DIR / "target" / "partial_parse.msgpack"
# The environment profiles.yml reads; dbt masks DBT_ENV_SECRET_* values in every output.
KEY_ENV = "DBT_ENV_SECRET_CLEARGRO_WAREHOUSE_KEY"
PATH_ENV = "CLEARGRO_WAREHOUSE_PATH"
TEMP_ENV = "CLEARGRO_WAREHOUSE_TEMP_DIR"
_PARSE_ONLY = {PATH_ENV: "/nonexistent/parse-only.duckdb", KEY_ENV: "parse-only",
               TEMP_ENV: "/nonexistent"}


def build_args(tenant: str) -> list[str]:
    """The tenant's `dbt build`, as a scheduled run makes it."""
    # Unit tests prove the SQL, not the tenant's data: they run in the test suite, not here.
    return ["build", *vars_args(tenant), "--exclude-resource-type", "unit_test"]


def vars_args(tenant: str) -> list[str]:
    return ["--vars", json.dumps(tenants.dbt_vars(tenant))]


@dataclass(frozen=True)
class DbtRun:
    """A finished dbt process: its exit code, each node's status (run_results.json) and its
    output (empty when it went to the terminal)."""

    returncode: int
    results: dict[str, str]
    output: str = ""

    @property
    def failed(self) -> list[str]:
        return sorted(uid for uid, status in self.results.items() if status in ("error", "fail"))

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.failed

    @property
    def built(self) -> int:
        """Models and snapshots built successfully."""
        return sum(1 for uid, status in self.results.items()
                   if uid.split(".")[0] in ("model", "snapshot") and status == "success")

    def describe_failure(self) -> str:
        where = ", ".join(self.failed[:5]) + (" ..." if len(self.failed) > 5 else "")
        return f"dbt exit {self.returncode}; failed: {where or 'before any node ran'}"


def run(tenant: str, args: Sequence[str], *, purpose: str, capture: bool = True,
        target: Path | None = None) -> DbtRun:
    """Run dbt for one tenant and wait for it. Non-empty args without `--vars` get the
    tenant's vars, as a scheduled run does. With `target`, dbt's target/ and logs are written
    there and kept (the caller owns that folder); otherwise they are removed."""
    args = list(args)
    if args and "--vars" not in args:
        args += vars_args(tenant)
    with process(tenant, args, purpose=purpose, capture=capture, target=target) as (child, work):
        output, _ = child.communicate()
        results = _run_results(work)
    return DbtRun(child.returncode, results, output.decode(errors="replace") if output else "")


@contextmanager
def process(tenant: str, args: Sequence[str], *, purpose: str, capture: bool = True,
            target: Path | None = None, env: Mapping[str, str] | None = None,
            project_dir: Path = PROJECT_DIR) -> Iterator[tuple[subprocess.Popen, Path]]:
    """Start dbt for one tenant and yield the process and its target folder; the tenant's
    writer lock is held until the block ends, and the folder is removed then (unless the
    caller gave `target`). `env` adds non-secret variables (Dagster's streaming settings)."""
    work = target or paths().tenant_work(tenant) / "dbt" / f"{purpose}-{uuid.uuid4().hex}"
    try:
        with external_writer(tenant, purpose="transform") as session:
            secrets = {PATH_ENV: str(session.path), KEY_ENV: session.key.hex(),
                       TEMP_ENV: str(session.spill)}
            child = _start(args, {**(env or {}), **secrets}, work, capture, project_dir)
            try:
                yield child, work
            except BaseException:
                child.terminate()  # a failed or cancelled caller: dbt must not outlive the lock
                raise
            finally:
                child.wait()
    finally:
        if target is None:
            shutil.rmtree(work, ignore_errors=True)


def parse(force: bool = False) -> Path:
    """Parse the project so Dagster can read its manifest (no warehouse is opened); skipped
    when the manifest is newer than every model and YAML file."""
    if MANIFEST.exists() and not force and not _sources_newer_than(MANIFEST):
        return MANIFEST
    # Parsing renders the profile but never connects: placeholders satisfy env_var().
    child = _start(["parse", "--quiet"], _PARSE_ONLY, MANIFEST.parent, capture=False,
                   project_dir=PROJECT_DIR)
    if child.wait() != 0:
        raise subprocess.CalledProcessError(child.returncode, [str(EXECUTABLE), "parse"])
    return MANIFEST


def manifest() -> dict[str, Any]:
    return json.loads(parse().read_text())


def _start(args: Sequence[str], env: Mapping[str, str], target: Path, capture: bool,
           project_dir: Path) -> subprocess.Popen:
    """The one place a dbt process starts."""
    target.mkdir(parents=True, exist_ok=True)
    if PARTIAL_PARSE.exists() and target != PARTIAL_PARSE.parent:
        # Reuse the project's parse (no data in it): the run skips most of its parsing.
        shutil.copy(PARTIAL_PARSE, target / PARTIAL_PARSE.name)
    child_env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                 "DBT_PROJECT_DIR": str(project_dir), "DBT_PROFILES_DIR": str(PROFILES_DIR),
                 "DBT_TARGET": TARGET, "DBT_TARGET_PATH": str(target), "DBT_LOG_PATH": str(target),
                 **env}
    output = subprocess.PIPE if capture else None
    return subprocess.Popen([str(EXECUTABLE), *args], env=child_env, cwd=project_dir,
                            stdout=output, stderr=subprocess.STDOUT if capture else None)


def _run_results(work: Path) -> dict[str, str]:
    try:
        return {r["unique_id"]: r["status"]
                for r in json.loads((work / "run_results.json").read_text())["results"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _sources_newer_than(built_file: Path) -> bool:
    built = built_file.stat().st_mtime
    return any(p.stat().st_mtime > built for p in PROJECT_DIR.rglob("*")
               if p.suffix in (".sql", ".yml") and "target" not in p.parts and p.is_file())
