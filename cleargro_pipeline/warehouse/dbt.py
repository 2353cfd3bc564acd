"""The one path to dbt: every dbt invocation of a tenant starts here, and so does the parse.

dbt parses the project once per code version (`parse`: the manifest Dagster reads, and dbt's
own parsed object that `preload` keeps in memory); the parse opens no warehouse and holds no
customer value. A tenant's dbt invocation (the Dagster asset, `cleargro dbt`, shopper erasure,
retention, disconnect, the tests) runs in a child forked from this process, which already has
dbt imported and the project parsed: no interpreter start-up, no parsing per run (per-tenant
vars and warehouse paths would defeat dbt's partial parsing on every run). The child runs under
the tenant's writer lock with the data key in the child's environment only (never argv, never
this process's `os.environ`: dbt's profile reads it with `env_var()`, and dbt masks
`DBT_ENV_SECRET_*` values in its logs). Its target/ and logs go to a per-run folder under
`data/work/<tenant>/dbt/` that is removed when the run ends.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Sequence

import duckdb

from cleargro_pipeline import tenants
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.settings import DBT_PROJECT_DIR, paths
from cleargro_pipeline.warehouse.connection import (ALIAS, ExternalWriter, external_writer,
                                                    open_session, transaction)

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
# A build of the whole project may leave the views as they are (`reuse_views`): a view holds no
# data, so re-creating one whose definition is unchanged is only dbt's work per node (about
# 50 ms, 24 views). Their tests still run: `fqn:*` selects every test, and with `empty`
# indirect selection excluding a view does not exclude its tests.
REUSE_VIEWS_ARGS = ("--indirect-selection", "empty", "--exclude", "config.materialized:view")
VIEW_STAMP = "cleargro-views:"  # + the fingerprint, as each view's comment


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
            project_dir: Path = PROJECT_DIR,
            reuse_views: bool = False) -> Iterator[tuple[ForkedDbt, Path]]:
    """Start dbt for one tenant and yield the process and its target folder; the tenant's
    writer lock is held until the block ends, and the folder is removed then (unless the
    caller gave `target`). `env` adds non-secret variables (Dagster's streaming settings).
    `reuse_views` (a build selecting the whole project, `fqn:*`): views stamped by an earlier
    build with today's fingerprint are not re-created; a build that re-creates them stamps
    them when it succeeds."""
    work = target or paths().tenant_work(tenant) / "dbt" / f"{purpose}-{uuid.uuid4().hex}"
    manifest = preload() if project_dir == PROJECT_DIR else None
    try:
        with external_writer(tenant, purpose="transform") as session:
            secrets = {PATH_ENV: str(session.path), KEY_ENV: session.key.hex(),
                       TEMP_ENV: str(session.spill)}
            # A debug log in a folder that is removed afterwards is only work (and one more
            # file that could hold what a query returned): none, unless the caller keeps it.
            quiet = {} if target else {"DBT_LOG_LEVEL_FILE": "none"}
            reuse_views = reuse_views and project_dir == PROJECT_DIR
            views_current = reuse_views and _views_current(tenant, session)
            child = _start([*args, *(REUSE_VIEWS_ARGS if views_current else ())],
                           {**quiet, **(env or {}), **secrets}, work, capture, project_dir,
                           manifest)
            try:
                yield child, work
            except BaseException:
                child.terminate()  # a failed or cancelled caller: dbt must not outlive the lock
                raise
            finally:
                child.wait()
            if reuse_views and not views_current and child.returncode == 0:
                _stamp_views(tenant, session)
    finally:
        if target is None:
            shutil.rmtree(work, ignore_errors=True)


def _views_current(tenant: str, session: ExternalWriter) -> bool:
    """Whether every view of the project is in the warehouse as a build of today's
    fingerprint left it (a view re-created since, or dropped, has lost its stamp)."""
    if not session.path.exists():
        return False
    with open_session(tenant, session, read_only=True) as conn:
        stamp = VIEW_STAMP + _views_fingerprint(tenant, conn)
        stamped = set(conn.execute(
            "select schema_name, view_name from duckdb_views() where database_name = ? "
            "and comment = ?", [ALIAS, stamp]).fetchall())
    return _project_views()[1] <= stamped


def _stamp_views(tenant: str, session: ExternalWriter) -> None:
    """Stamp the views a successful build has just re-created. dbt does not touch the raw
    tables, so the fingerprint is the one the build's views were compiled against."""
    try:
        with open_session(tenant, session, read_only=False) as conn, transaction(conn):
            stamp = VIEW_STAMP + _views_fingerprint(tenant, conn)
            for schema, name in sorted(_project_views()[1]):
                conn.execute(f"comment on view {ALIAS}.\"{schema}\".\"{name}\" is '{stamp}'")
    except duckdb.Error:
        pass  # a view the build did not leave (it failed on its own terms): the next re-creates them


def _views_fingerprint(tenant: str, conn: Any) -> str:
    """What the project's views compile to: the parsed project (every parse rewrites the
    manifest), the tenant's vars, and the raw tables and columns there are (`raw_source`
    stages what exists)."""
    code, _, source_schemas = _project_views()
    shape = conn.execute(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_catalog = ? and list_contains(?, table_schema) order by all",
        [ALIAS, sorted(source_schemas)]).fetchall()
    digest = hashlib.sha256(code.encode())
    digest.update(json.dumps([tenants.dbt_vars(tenant), shape], sort_keys=True).encode())
    return digest.hexdigest()[:32]


def _project_views() -> tuple[str, frozenset[tuple[str, str]], frozenset[str]]:
    """The manifest's digest, its views (schema, name) and the schemas of its sources."""
    stat = parse().stat()
    return _read_project_views(stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1)
def _read_project_views(mtime_ns: int, size: int) -> tuple[str, frozenset[tuple[str, str]],
                                                             frozenset[str]]:
    raw = MANIFEST.read_bytes()
    parsed = json.loads(raw)
    views = frozenset((node["schema"], node["alias"]) for node in parsed["nodes"].values()
                      if node["resource_type"] == "model"
                      and node["config"]["materialized"] == "view")
    return (hashlib.sha256(raw).hexdigest(), views,
            frozenset(source["schema"] for source in parsed["sources"].values()))


def parse(force: bool = False) -> Path:
    """Parse the project once per code version, for Dagster (the manifest) and for runs
    (dbt's partial-parse file); skipped while the manifest is newer than every model and
    YAML file. No warehouse is opened: placeholders satisfy the profile's `env_var()`."""
    if MANIFEST.exists() and not force and not _sources_newer_than(MANIFEST):
        return MANIFEST
    child = _start(["parse", "--quiet"], _PARSE_ONLY, MANIFEST.parent, capture=False,
                   project_dir=PROJECT_DIR, manifest=None)
    if child.wait() != 0:
        raise DbtParseError(f"dbt could not parse {PROJECT_DIR} (exit {child.returncode}); "
                            "run `cleargro dbt --tenant T -- parse` to see why")
    return MANIFEST


def manifest() -> dict[str, Any]:
    return json.loads(parse().read_text())


@functools.cache
def preload() -> Any:
    """dbt imported and the project parsed, as dbt's own Manifest object, in this process:
    every dbt child forked from here starts from it. The run launcher's zygote calls it once,
    so each run pays neither dbt's import (about 5 s) nor its parse (about 5 s)."""
    parse()
    scratch = Path(tempfile.mkdtemp(prefix="cleargro-dbt-parse-"))
    try:
        # The project's partial-parse file was written with the same placeholders: dbt reads
        # it instead of parsing again.
        shutil.copy(PARTIAL_PARSE, scratch / PARTIAL_PARSE.name)
        with _environment(_dbt_env(_PARSE_ONLY, scratch, PROJECT_DIR)):
            result = _dbt_runner()().invoke(["parse", "--quiet"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # Start-up cost: dbt imports a command's modules when it first runs one; import build's
    # (run, test, seed, snapshot) here, once, rather than in every forked child.
    import dbt.task.build  # noqa: F401
    if not result.success:
        raise DbtParseError(f"dbt could not load the parsed project {PROJECT_DIR}: "
                            f"{type(result.exception).__name__ if result.exception else 'failed'}")
    return result.result


class DbtParseError(CleargroError):
    pass


class ForkedDbt:
    """One dbt invocation in a child forked from this process, with the parts of
    `subprocess.Popen` its callers read (dagster-dbt's `DbtCliInvocation` among them):
    `args`, `pid`, `stdout` (dbt's output, when captured), `wait`, `poll`, `returncode`,
    `communicate`, `send_signal`, `terminate`."""

    def __init__(self, child: Any, args: list[str], stdout: IO[bytes] | None):
        self._child, self.args, self.stdout, self.pid = child, args, stdout, child.pid

    @property
    def returncode(self) -> int | None:
        return self._child.exitcode

    def poll(self) -> int | None:
        return self._child.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._child.join(timeout)
        if self._child.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._child.exitcode

    def communicate(self) -> tuple[bytes | None, None]:
        output = None
        if self.stdout is not None:
            with self.stdout:
                output = self.stdout.read()
        self.wait()
        return output, None

    def send_signal(self, sig: int) -> None:
        if self._child.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def _start(args: Sequence[str], env: Mapping[str, str], target: Path, capture: bool,
           project_dir: Path, manifest: Any) -> ForkedDbt:
    """The one place a dbt invocation starts: a forked child (see the module docstring)."""
    target.mkdir(parents=True, exist_ok=True)
    if PARTIAL_PARSE.exists() and target != PARTIAL_PARSE.parent and manifest is None:
        # A project copy (dagster-dbt's selector for a large subset) parses in the child:
        # the project's parse (no data in it) lets it skip most of that.
        shutil.copy(PARTIAL_PARSE, target / PARTIAL_PARSE.name)
    runner = _dbt_runner()  # imported here, before the fork: the child must not pay it
    reader, writer = os.pipe() if capture else (None, None)
    child = multiprocessing.get_context("fork").Process(
        target=_dbt_child, name="cleargro-dbt", daemon=False,
        args=(runner, manifest, list(args), _dbt_env(env, target, project_dir), writer))
    child.start()
    if writer is not None:
        os.close(writer)
    return ForkedDbt(child, [str(EXECUTABLE), *args],
                     os.fdopen(reader, "rb") if reader is not None else None)


def _dbt_child(runner: Any, manifest: Any, args: list[str], env: dict[str, str],
               output: int | None) -> None:
    """In the forked child: dbt's environment (the key included) becomes this process's own,
    its output goes to the pipe, and dbt runs in-process from the parsed manifest."""
    # The parent may be a Dagster run whose handlers swallow interrupts: dbt's own handling
    # of SIGINT (cancel the running queries, exit) and SIGTERM's default apply here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.freeze()  # the parsed project outlives the run: full collections skip it (as the loader's)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(env["DBT_PROJECT_DIR"])
    if output is not None:
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
    # pytest or Dagster may have replaced sys.stdout with an object of their own.
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    try:
        result = runner(manifest=manifest).invoke(args)
        code = 0 if result.success else 2 if result.exception else 1  # dbt's CLI exit codes
    except BaseException:  # noqa: BLE001 - an interrupt or a crash in dbt: dbt's exit code 2
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    # multiprocessing's own exit (not os._exit here) runs the finalizers that release the
    # semaphores dbt created; it skips the parent's atexit handlers either way.
    sys.exit(code)


def _dbt_env(env: Mapping[str, str], target: Path, project_dir: Path) -> dict[str, str]:
    return {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_PROJECT_DIR": str(project_dir), "DBT_PROFILES_DIR": str(PROFILES_DIR),
            "DBT_TARGET": TARGET, "DBT_TARGET_PATH": str(target), "DBT_LOG_PATH": str(target),
            **env}


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """`env` as this process's environment for the block (placeholders only, never a key)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _dbt_runner() -> Any:
    # Start-up cost: dbt's CLI takes about 5 s to import; only processes that run dbt pay it.
    from dbt.cli.main import dbtRunner

    return dbtRunner


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
