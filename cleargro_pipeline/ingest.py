"""Loading raw data into a tenant's warehouse with dlt, in a supervised child process.

dlt stages every load as plaintext files in its working folder. The load runs
in a child process; the parent removes that folder whatever happens to the
child (success, an exception, or SIGKILL from the OOM killer or an operator),
and the child clears leftovers of earlier runs once it holds the tenant's
writer lock. The child holds the lock for its whole life, so the kernel
releases it the moment the child dies. One child loads every system of a run
(one lock, one start), and is forked: the parent has dlt imported already, so
the child starts in milliseconds instead of importing it again in seconds
(a file drop's child is spawned: see `load_each`).
A system that fails does not stop the others; the failures are raised after.

Errors crossing back to the parent carry the error class and our own
messages only: third-party messages can quote a failing value, and Dagster
would persist them in its event log.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import resource
import shutil
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

import dlt
import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.controls import scopes
from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.errors import CleargroError, CredentialsRejected
from cleargro_pipeline.privacy import request_log
from cleargro_pipeline.security import keys
from cleargro_pipeline.settings import paths
from cleargro_pipeline.sources import contract, google_oauth
from cleargro_pipeline.sources.ga4.client import Ga4Client
from cleargro_pipeline.sources.ga4.source import Ga4Provider
from cleargro_pipeline.sources.google_ads.client import AccessTokenCredentials, AdsClient
from cleargro_pipeline.sources.google_ads.source import GoogleAdsProvider
from cleargro_pipeline.sources.shopify import credentials
from cleargro_pipeline.sources.raw import (contract_source, incremental_last_value,
                                           provider_from_mapping)
from cleargro_pipeline.sources.shopify.client import ShopifyClient
from cleargro_pipeline.sources.shopify.source import ShopifyProvider
from cleargro_pipeline.sources.warehouse_destination import warehouse_destination

SYSTEMS = ("shop", "ga4", "google_ads", "app")
HISTORY_TABLES = (("raw_shop", "variant_price_history"), ("raw_shop", "inventory_level_history"))


class IngestError(CleargroError):
    """A load failed; nothing of it was committed for the tables that failed, no files remain."""


@dataclass(frozen=True)
class DemoPlan:
    """The embedded demo shop: deterministic, generated inside the loader."""
    size: str = "small"
    seed: int = 7
    end_date: date = date(2026, 11, 27)
    incidents: bool = True
    # Withhold rows whose cursor falls in the last N days, as if synced N days earlier:
    # the next run with 0 is then a daily increment (`make bench` measures it).
    hold_back_days: int = 0
    tenant: str = "demo"  # part of the ids of the opportunities the demo's app events name
    # The daily price and stock history a shop does not keep (onboarding backfills it); without
    # it the demo delivers what a live shop's API does.
    history: bool = True


@dataclass(frozen=True)
class ShopifyPlan:
    """A live shop through the GraphQL Admin API, with the token sealed for the tenant."""
    tenant: str
    shop: str  # NAME.myshopify.com
    endpoint: str | None = None  # a loopback base URL instead of the shop's (tests, staging)
    bulk_after_days: int = 7  # a cursor older than this is caught up by a bulk operation
    shopper_level: bool = True  # False: the tenant keeps nothing per shopper (not even asked)


@dataclass(frozen=True)
class Ga4Plan:
    """A live GA4 property through the Data API, with the Google grant sealed for the tenant."""
    tenant: str
    property: str  # the numeric property id
    endpoint: str | None = None  # a loopback base URL instead of Google's (tests)
    history_days: int = 730  # the first sync's backfill
    trailing_days: int = 3  # days re-read on each sync (GA keeps reprocessing them)


@dataclass(frozen=True)
class GoogleAdsPlan:
    """A live Google Ads account through the API (google-ads), with the Google grant sealed
    for the tenant."""
    tenant: str
    customer: str  # ten digits
    login_customer: str | None = None  # the manager account the access goes through
    endpoint: str | None = None  # 127.0.0.1:PORT: a local test server over plaintext gRPC
    history_days: int = 730
    trailing_days: int = 30  # days re-read on each sync (conversions are credited late)


@dataclass(frozen=True)
class FileDropPlan:
    """A directory of API response bodies and CSV exports (`cleargro import`)."""
    directory: Path


@dataclass
class LoadReport:
    tenant: str
    system: str
    rows: dict[str, int] = field(default_factory=dict)
    load_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)  # extract, normalize, load
    # What a live source says about the sync (how each document was read, the API version it
    # served): recorded as the raw assets' metadata, never data values.
    notices: dict[str, str] = field(default_factory=dict)
    # The loader's peak resident memory above what it started with: a forked child counts the
    # parent's pages it shares as resident too, so its own use is the growth.
    memory_growth_mb: float = 0.0


def _dlt_work_root(tenant: str) -> Path:
    return paths().tenant_work(tenant) / "dlt"


Plan = DemoPlan | FileDropPlan | ShopifyPlan | Ga4Plan | GoogleAdsPlan


@dataclass
class LoadFailure:
    """One system's load that failed: nothing of its failed tables was committed."""
    system: str
    message: str  # sanitised (see `_safe_message`)
    credentials_rejected: bool


def load(tenant: str, plan: Plan | Mapping[str, Plan],
         systems: tuple[str, ...] = SYSTEMS) -> list[LoadReport]:
    """Load `systems` of `plan` (one plan, or one per system) into the tenant's warehouse and
    return what was loaded; if a system failed, the others still load and the first failure
    is raised after them (`CredentialsRejected` if a source refused the credentials)."""
    reports, failures = load_each(tenant, plan, systems)
    if failures:
        first = failures[0]
        kind = CredentialsRejected if first.credentials_rejected else IngestError
        raise kind(f"tenant '{tenant}': load of {first.system} failed: {first.message}")
    return reports


def load_each(tenant: str, plan: Plan | Mapping[str, Plan],
              systems: tuple[str, ...] = SYSTEMS) -> tuple[list[LoadReport], list[LoadFailure]]:
    """`load`, returning each system's failure instead of raising it (the Dagster asset records
    the systems that loaded, then fails naming the ones that did not)."""
    plans = dict(plan) if isinstance(plan, Mapping) else {system: plan for system in systems}
    plans = {system: plans[system] for system in systems if system in plans}
    work_dir = _dlt_work_root(tenant) / uuid.uuid4().hex
    # Forked, the child starts in milliseconds with dlt already imported. A file drop is read
    # with polars, which deadlocks in a forked child once the parent has started polars'
    # thread pool (a long-lived process that used it): that child starts fresh (spawn).
    drops = any(isinstance(p, FileDropPlan) for p in plans.values())
    ctx = multiprocessing.get_context("spawn" if drops else "fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, name=f"cleargro-load-{tenant}",
                        args=(tenant, plans, str(work_dir), sender))
    child.start()
    sender.close()
    try:
        outcome = _await(child, receiver)
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        shutil.rmtree(work_dir, ignore_errors=True)
    return _unpack(tenant, child.exitcode, outcome)


def _await(child: Any, receiver: Any) -> tuple[str, Any] | None:
    outcome = None
    while child.is_alive() or receiver.poll():
        if receiver.poll(0.2):
            try:
                outcome = receiver.recv()
            except EOFError:
                break
    child.join()
    return outcome


def _unpack(tenant: str, exitcode: int | None,
            outcome: tuple[str, Any] | None) -> tuple[list[LoadReport], list[LoadFailure]]:
    if outcome and outcome[0] == "ok":
        return outcome[1], outcome[2]
    if outcome and outcome[0] == "error":
        kind = CredentialsRejected if outcome[2] else IngestError
        raise kind(f"tenant '{tenant}': load failed: {outcome[1]}")
    cause = (f"killed by signal {signal.Signals(-exitcode).name}" if exitcode and exitcode < 0
             else f"exited with status {exitcode}")
    raise IngestError(f"tenant '{tenant}': loader process {cause} mid-load; completed tables "
                      "stay loaded, the rest reloads on the next run, and its working files "
                      "were removed")


def _resident_mb() -> float:
    """This process's resident set now (Linux), in MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _die_with_parent() -> None:
    # Linux: if the supervising process dies, the loader dies too (and frees the lock).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _child_main(tenant: str, plans: dict[str, Plan], work_dir: str, sender: Any) -> None:
    _die_with_parent()
    # Forked from a Dagster run or a CLI: their interrupt handlers are not the loader's.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Every object the parent had (Dagster, dlt, dbt's manifest) lives as long as this child:
    # out of the collector's sight, a full collection walks only what the load allocates. A
    # source that builds a Python object per row (Google Ads' protobuf rows) otherwise spent a
    # third of its sync in the collector (8.4 of 23.5 s, medium shop).
    gc.freeze()
    try:
        started_rss = _resident_mb()
        reports, failures = _load_in_child(tenant, plans, Path(work_dir))
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - started_rss
        for report in reports:
            report.memory_growth_mb = round(max(growth, 0.0), 1)
        sender.send(("ok", reports, failures))
    except BaseException as error:  # noqa: BLE001 - every failure must reach the parent, sanitised
        sender.send(("error", _safe_message(error), _rejected_credentials(error)))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        sender.close()


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and what it wraps (dlt keeps the original in `.exception`), ten deep at most."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return
        yield seen
        seen = getattr(seen, "exception", None) or seen.__cause__ or seen.__context__


def _rejected_credentials(error: BaseException) -> bool:
    """Whether a source refused the credentials (the parent re-raises it as such, for alerts)."""
    return any(isinstance(seen, CredentialsRejected) for seen in _causes(error))


def _safe_message(error: BaseException) -> str:
    """Our own errors (also when dlt wraps them) are shown; others by class only."""
    for seen in _causes(error):
        if isinstance(seen, CleargroError):
            return f"{type(seen).__name__}: {seen}"
    step = getattr(error, "step", None)
    where = f" in dlt step '{step}'" if step else ""
    if os.environ.get("CLEARGRO_DEBUG_LOAD"):
        return f"{type(error).__name__}{where}: {error}"
    return (f"{type(error).__name__}{where} (details withheld: they may quote customer values; "
            "rerun with CLEARGRO_DEBUG_LOAD=1 on a secured machine to see them)")


def configure_dlt(work_dir: Path) -> None:
    """dlt settings for the child: nothing left behind, nothing sent anywhere."""
    os.environ.update({
        "DLT_DATA_DIR": str(work_dir / "home"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "RUNTIME__LOG_LEVEL": "ERROR",
        "LOAD__DELETE_COMPLETED_JOBS": "true",
        "LOAD__TRUNCATE_STAGING_DATASET": "true",
        # Transient files, read once by DuckDB: compressing them only costs CPU.
        "DATA_WRITER__COMPRESSION": "none",
        "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID": "true",
        "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID": "false",
    })


def _load_in_child(name: str, plans: dict[str, Plan],
                   work_dir: Path) -> tuple[list[LoadReport], list[LoadFailure]]:
    configure_dlt(work_dir)
    providers = _providers(plans)  # validates a file drop before anything is loaded
    tenant = tenants.get(name)  # the load's one registry lookup: passed down from here
    scope, providers = _in_scope(tenant, plans, providers)
    pseudonymise = keys.pseudonymiser(name, "ingest")
    reports, failures = [], []
    with warehouse.open_warehouse(name, purpose="ingest") as conn:
        _clear_stale_work(name, keep=work_dir)
        # Read under the writer lock: an erasure that finished while we waited is included.
        erased = request_log.redacted_pseudonyms(name)
        for system, (provide, incremental) in providers.items():
            try:
                reports.append(load_system(
                    conn, system, provide, pseudonymise, incremental=incremental,
                    work_dir=work_dir, tenant=name, scope=scope, erased=erased))
            except Exception as error:  # noqa: BLE001 - the other systems still load
                failures.append(LoadFailure(system, _safe_message(error),
                                            _rejected_credentials(error)))
    return reports, failures


def _in_scope(tenant: tenants.Tenant, plans: dict[str, Plan],
              providers: dict[str, Any]) -> tuple[scopes.Scope, dict[str, Any]]:
    """The tenant's data scope, and the providers of the systems it may load: sources out of
    scope never load (file drops included); a disconnected source is not synced (every plan
    but a file drop, which an operator runs on purpose, is a sync)."""
    scope = scopes.of(tenant)
    return scope, {system: provider for system, provider in providers.items()
                   if scope.allows_source(system)
                   and not (not isinstance(plans[system], FileDropPlan)
                            and system in tenant.disconnected_sources)}


def load_system(conn: Any, system: str, provide: Any, pseudonymise: Any, *, incremental: bool,
                work_dir: Path, tenant: str, scope: Any = None,
                erased: frozenset[str] = frozenset()) -> LoadReport:
    """Run one system's dlt source into the open warehouse connection; the shoppers named
    in `erased` (pseudonyms) are left out."""
    started = time.monotonic()
    pipeline = dlt.pipeline(
        pipeline_name=f"cleargro_{system}", pipelines_dir=str(work_dir / "pipelines"),
        destination=warehouse_destination(conn), dataset_name=f"raw_{system}", progress=None)
    loaded = [name for (name,) in conn.execute(
        "select table_name from duckdb_tables() where database_name = ? and schema_name = ?",
        [warehouse.ALIAS, f"raw_{system}"]).fetchall()]
    source = contract_source(system, provide, pseudonymise, incremental=incremental,
                             loaded=loaded, scope=scope, erased=erased,
                             lag=getattr(provide, "cursor_lag", None))
    # The working folder is new on every load: restore the incremental cursors from the
    # warehouse's _dlt_pipeline_state first (run() would; extract() alone does not). A
    # dataset without tables has no state to restore.
    if loaded:
        pipeline.sync_destination()
    phases = {}
    pipeline.extract(source, loader_file_format="parquet")
    phases["extract"] = time.monotonic()
    pipeline.normalize()
    phases["normalize"] = time.monotonic()
    _injected_fault(system)  # tests only: the normalised plaintext files now sit in work_dir
    info = pipeline.load()
    phases["load"] = time.monotonic()
    notices = dict(getattr(provide, "notices", {}))
    counts = pipeline.last_trace.last_normalize_info.row_counts
    marks = [started, *phases.values()]
    return LoadReport(tenant, system,
                      rows={t: n for t, n in sorted(counts.items()) if not t.startswith("_dlt")},
                      load_ids=list(info.loads_ids), seconds=round(marks[-1] - started, 3),
                      phase_seconds={name: round(end - begin, 3) for name, begin, end
                                     in zip(phases, marks, marks[1:])}, notices=notices)


def _clear_stale_work(tenant: str, keep: Path) -> None:
    """Holding the writer lock, no other loader of this tenant runs: any other folder is stale."""
    root = _dlt_work_root(tenant)
    for leftover in root.glob("*") if root.exists() else []:
        if leftover != keep:
            shutil.rmtree(leftover, ignore_errors=True)


def _providers(plans: dict[str, Plan]) -> dict[str, tuple[Any, bool]]:
    """Each system's provider, in the order of `plans`; systems sharing a plan share its
    provider (one demo shop generated, one file drop read)."""
    systems_of: dict[Plan, list[str]] = {}
    for system, plan in plans.items():
        systems_of.setdefault(plan, []).append(system)
    shared = {}
    for plan, systems in systems_of.items():
        shared.update(_plan_providers(plan, tuple(systems)))
    return {system: shared[system] for system in plans if system in shared}


def _plan_providers(plan: Plan, systems: tuple[str, ...]) -> dict[str, tuple[Any, bool]]:
    if isinstance(plan, DemoPlan):
        shop = DemoShop(size=plan.size, seed=plan.seed, end_date=plan.end_date,
                        incidents=plan.incidents, tenant=plan.tenant)
        cutoff = plan.end_date + timedelta(days=1 - plan.hold_back_days)
        skipped = set() if plan.history else set(HISTORY_TABLES)

        def provide(raw: Any) -> Any:
            if (raw.dataset, raw.name) in skipped:
                return ()
            return _until(shop.iter_table(raw.dataset, raw.name), raw, cutoff)
        return {system: (provide, True) for system in systems}
    if isinstance(plan, ShopifyPlan):
        return {system: (_shopify_provider(plan), True) for system in systems}
    if isinstance(plan, Ga4Plan):
        return {system: (_ga4_provider(plan), True) for system in systems}
    if isinstance(plan, GoogleAdsPlan):
        return {system: (_google_ads_provider(plan), True) for system in systems}
    if isinstance(plan, FileDropPlan):
        # Start-up cost: the file-drop reader imports polars (about a second), which only
        # a file drop needs; the loader child of every demo or sync would pay it otherwise.
        from cleargro_pipeline.sources.file_drop import read_drop

        contents = read_drop(plan.directory)
        present = {dataset.removeprefix("raw_") for dataset, _ in contents.tables}
        provide = provider_from_mapping(contents.tables)
        return {system: (provide, False) for system in systems if system in present}
    raise TypeError(f"unknown load plan {type(plan).__name__}")


def _shopify_provider(plan: ShopifyPlan) -> ShopifyProvider:
    # Asked before each request: an expiring token is renewed in time (credentials.py).
    client = ShopifyClient(plan.shop, credentials.token_source(plan.tenant), endpoint=plan.endpoint)
    return ShopifyProvider(client, lambda table: incremental_last_value(
        contract.table(contract.SHOP, table)), bulk_after=timedelta(days=plan.bulk_after_days),
        shopper_level=plan.shopper_level)


def _ga4_provider(plan: Ga4Plan) -> Ga4Provider:
    client = Ga4Client(plan.property, google_oauth.token_source(plan.tenant, "ga4"),
                       endpoint=plan.endpoint)
    return Ga4Provider(client, lambda table: incremental_last_value(
        contract.table(contract.GA4, table)), history_days=plan.history_days,
        trailing_days=plan.trailing_days)


def _google_ads_provider(plan: GoogleAdsPlan) -> GoogleAdsProvider:
    credentials = AccessTokenCredentials(google_oauth.token_source(plan.tenant, "google_ads"))
    client = AdsClient(credentials, plan.customer, login_customer_id=plan.login_customer,
                       endpoint_address=plan.endpoint)
    return GoogleAdsProvider(client, lambda table: incremental_last_value(
        contract.table(contract.GOOGLE_ADS, table)), history_days=plan.history_days,
        trailing_days=plan.trailing_days)


def _until(chunks: Any, raw: Any, cutoff: date) -> Any:
    """Only the rows whose cursor is before `cutoff` (midnight UTC)."""
    for chunk in chunks:
        cursor = chunk.column(raw.cursor)
        bound = (pa.scalar(cutoff, pa.date32()) if pa.types.is_date(cursor.type) else
                 pa.scalar(datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=timezone.utc),
                           cursor.type))
        yield chunk.filter(pc.fill_null(pc.less(cursor, bound), True))


FAULT_ENV = "CLEARGRO_TEST_FAULT"  # "fail:<system>" or "stall:<system>", set only by tests


def _injected_fault(system: str) -> None:
    """Fault injection for the crash tests, between normalise and load: the most plaintext
    dlt ever holds on disk is there at that moment."""
    action, _, target = os.environ.get(FAULT_ENV, "").partition(":")
    if target != system:
        return
    if action == "fail":
        raise IngestError(f"injected failure while loading {system} (test fault)")
    if action == "reject":
        raise CredentialsRejected(f"{system} rejected the stored credentials (test fault)")
    if action == "stall":
        Path(os.environ["CLEARGRO_TEST_STALL_MARKER"]).write_text(str(os.getpid()))
        time.sleep(3600)
