"""Run tenants through a Dagster instance exactly as production does: `running_daemon` writes
`cleargro init`'s dagster.yaml into a DAGSTER_HOME and runs a real `dagster-daemon` on
workspace.yaml (queue limits, `WarmRunLauncher`, run monitoring, the sensors); `schedule_driver`
loads the workspace in this process like the daemon does; `submit_schedule_tick` evaluates the
real `daily_tenant_refresh` for a given tick and submits its runs through the scheduler's own
code path (same RunRequests, tags and run keys), so the daemon's queue dequeues and launches
them; `wait_for_runs` returns each run's status and wall seconds from its run record.

    with running_daemon(home) as daemon, schedule_driver() as driver:
        run_ids = submit_schedule_tick(driver, tick)
        outcomes = wait_for_runs(driver.instance, run_ids)

The daemon's first launch starts the launcher's zygote (its warm-up takes seconds): time a
second tick, not the first. The tick leaves no schedule tick record (runs carry every other
tag the scheduler gives them, `dagster/tick` aside).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Collection, Iterator, Sequence

import dagster as dg
from dagster._core.remote_representation.external import RemoteSchedule
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon import daemon as _daemon  # noqa: F401 - first: the scheduler imports it back
from dagster._scheduler.scheduler import _submit_run_request
from dagster._core.definitions.timestamp import TimestampWithTimezone

from cleargro_pipeline import bootstrap, tenants
from cleargro_pipeline.settings import PROJECT_ROOT

WORKSPACE = PROJECT_ROOT / "workspace.yaml"
DAEMON = Path(sys.executable).with_name("dagster-daemon")
SCHEDULE = "daily_tenant_refresh"
# The daemon that dequeues runs: the stack is ready once it has beaten.
QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
log = logging.getLogger(__name__)


@dataclass
class Daemon:
    """A running `dagster-daemon run`, the leader of its own session: every process it starts
    (code server, the launcher's zygote, run workers and their children) is in that session."""

    process: subprocess.Popen
    log_file: Path

    @property
    def session(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The daemon and every live process it started (for memory sampling)."""
        return _session_pids(self.session)


@contextmanager
def running_daemon(dagster_home: Path, *, ready_timeout_s: float = 300) -> Iterator[Daemon]:
    """Write `cleargro init`'s dagster.yaml into `dagster_home`, start `dagster-daemon run -w
    workspace.yaml` (cwd: the repository; environment: this process's, DAGSTER_HOME set) and
    wait until it dequeues runs. On exit the daemon is stopped (SIGTERM, as a service manager
    would) and anything left of its session is killed: no orphans. Its output goes to
    `dagster_home/daemon.log`."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(bootstrap.dagster_yaml(dagster_home))
    log_file = dagster_home / "daemon.log"
    started = time.time()
    with open(log_file, "ab") as output:
        process = subprocess.Popen(
            [str(DAEMON), "run", "-w", str(WORKSPACE)], cwd=PROJECT_ROOT,
            env={**os.environ, "DAGSTER_HOME": str(dagster_home)}, stdin=subprocess.DEVNULL,
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    daemon = Daemon(process, log_file)
    try:
        _wait_until_dequeuing(daemon, dagster_home, started, ready_timeout_s)
        yield daemon
    finally:
        _stop(daemon)


def _wait_until_dequeuing(daemon: Daemon, dagster_home: Path, started: float,
                          timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        while time.monotonic() < deadline:
            if daemon.process.poll() is not None:
                raise RuntimeError(f"dagster-daemon exited with {daemon.process.returncode}; "
                                   f"see {daemon.log_file}")
            beat = instance.get_daemon_heartbeats().get(QUEUE_DAEMON)
            if beat is not None and beat.timestamp >= started:
                return
            time.sleep(0.5)
    raise TimeoutError(f"dagster-daemon did not start dequeuing within {timeout_s:.0f} s; "
                       f"see {daemon.log_file}")


def _stop(daemon: Daemon, grace_s: float = 30) -> None:
    if daemon.process.poll() is None:
        daemon.process.send_signal(signal.SIGTERM)
        try:
            daemon.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait()
    # The code server, the zygote (it outlives its parent while workers live) and any worker.
    for signum, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        left = _session_pids(daemon.session)
        for pid in left:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = _session_pids(daemon.session)
        if not left:
            return
    raise RuntimeError(f"processes of the daemon's session survived SIGKILL: {left}")


def _session_pids(session: int) -> list[int]:
    """Live (not zombie) processes of a session, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@contextmanager
def schedule_driver(instance: dg.DagsterInstance | None = None) -> Iterator[WorkspaceProcessContext]:
    """workspace.yaml's code location loaded in this process as the daemon loads it (a code
    server of its own), on the DAGSTER_HOME instance unless one is given; what
    `submit_schedule_tick` submits through. Loading takes about as long as a cold code location."""
    with (dg.DagsterInstance.get() if instance is None else nullcontext(instance)) as owned:
        with WorkspaceProcessContext(owned, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as context:
            yield context


def submit_schedule_tick(driver: WorkspaceProcessContext, tick: datetime, *,
                         tenants: Collection[str] | None = None,
                         schedule: str = SCHEDULE) -> list[str]:
    """Evaluate `schedule` for the tick at `tick` (an aware datetime: the schedule's own
    `scheduled_execution_time`, which names its run keys) in the code server, and submit its
    RunRequests to the instance's queue through the scheduler daemon's `_submit_run_request`;
    with `tenants`, only the requests for those partitions (one tenant timed alone).
    Returns the run ids in request order; a request already submitted for that tick and run key
    returns its existing run, as the scheduler does on a retried tick."""
    remote = _remote_schedule(driver, schedule)
    location = driver.create_request_context().get_code_location(remote.handle.location_name)
    evaluation = location.get_schedule_execution_data(
        instance=driver.instance, repository_handle=remote.handle.repository_handle,
        schedule_name=schedule, log_key=None,
        scheduled_execution_time=TimestampWithTimezone(tick.timestamp(), remote.execution_timezone or "UTC"))
    run_ids = []
    for request in evaluation.run_requests or []:
        if tenants is not None and request.partition_key not in tenants:
            continue
        result = _submit_run_request(request, driver, remote, tick, log, None)
        if result.error_info:
            raise RuntimeError(f"submitting {request.run_key} failed: {result.error_info.message}")
        run_ids.append((result.submitted_run or result.existing_run).run_id)
    return run_ids


def _remote_schedule(driver: WorkspaceProcessContext, name: str) -> RemoteSchedule:
    for location in driver.create_request_context().code_locations:
        for repository in location.get_repositories().values():
            if repository.has_schedule(name):
                return repository.get_schedule(name)
    raise LookupError(f"no code location of {WORKSPACE} has a schedule named {name!r}")


@dataclass(frozen=True)
class RunOutcome:
    """One finished run, from its run record: `queued_s` from submission (the record's creation,
    when it entered the queue) to start, `wall_s` from submission to end, `run_s` from start to
    end (the worker's own time; None if it never started)."""

    run_id: str
    tenant: str | None
    status: str
    queued_s: float | None
    wall_s: float
    run_s: float | None

    @property
    def ok(self) -> bool:
        return self.status == dg.DagsterRunStatus.SUCCESS.value


def wait_for_runs(instance: dg.DagsterInstance, run_ids: Sequence[str], *,
                  timeout_s: float = 3600, poll_s: float = 0.5) -> list[RunOutcome]:
    """Wait until every run has finished (success, failure or canceled) and return their
    outcomes in the order of `run_ids`; TimeoutError names how many had not."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = {r.dagster_run.run_id: r for r in
                   instance.get_run_records(dg.RunsFilter(run_ids=list(run_ids)))}
        unfinished = [i for i in run_ids if i not in records or not records[i].dagster_run.is_finished]
        if not unfinished:
            return [_outcome(records[i]) for i in run_ids]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(unfinished)} of {len(run_ids)} runs had not finished "
                               f"after {timeout_s:.0f} s (first: {unfinished[0]})")
        time.sleep(poll_s)


def _outcome(record) -> RunOutcome:
    created = record.create_timestamp
    if created.tzinfo is None:  # SQLite run storage keeps naive UTC
        created = created.replace(tzinfo=timezone.utc)
    submitted = created.timestamp()
    end = record.end_time or record.update_timestamp.replace(tzinfo=timezone.utc).timestamp()
    start = record.start_time
    run = record.dagster_run
    return RunOutcome(run.run_id, run.tags.get(tenants.RUN_TAG), run.status.value,
                      queued_s=None if start is None else start - submitted,
                      wall_s=end - submitted, run_s=None if start is None else end - start)


def lock_errors(instance: dg.DagsterInstance, run_ids: Sequence[str]) -> int:
    """Steps (or runs, when no step failed) that failed because a tenant's lock timed out: a
    `LockTimeout`, or the warehouse's "busy" error it becomes."""
    count = 0
    for run_id in run_ids:
        failures = instance.get_records_for_run(
            run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE},
            limit=1000).records
        count += sum(_is_lock_timeout(r.event_log_entry.dagster_event) for r in failures)
    return count


def _is_lock_timeout(event: dg.DagsterEvent | None) -> bool:
    error = getattr(event.event_specific_data, "error", None) if event else None
    while error is not None:
        if error.cls_name == "LockTimeout" or "warehouse is busy" in (error.message or ""):
            return True
        error = error.cause
    return False
