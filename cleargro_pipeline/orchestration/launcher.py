"""`WarmRunLauncher`: Dagster's run launcher for our code location, starting each run in its own
process forked from a warm zygote instead of a cold interpreter (`dagster.yaml`:
`run_launcher: {module: cleargro_pipeline.orchestration.launcher, class: WarmRunLauncher}`).

The zygote is multiprocessing's forkserver, started lazily by the first launch (and again if it
died) with `zygote` preloaded: the code location loaded, dbt imported and parsed. Each run is
one process (crash isolation) running `run_worker.execute_run`, which executes the run as
`dagster api execute_run` does. The worker's pid and start time are a run tag, so any process
with the instance (daemon, UI, CLI) can terminate the run (SIGINT, as Dagster's own workers get
it, then SIGKILL after a grace period) and the run monitor can see a dead worker. The worker
inherits the launcher's environment (keys included); nothing secret goes into its arguments,
tags or events. This module stays light: the daemon imports it, only the zygote loads our code.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import Field
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.errors import DagsterLaunchFailedError
from dagster._core.launcher import (CheckRunHealthResult, LaunchRunContext, RunLauncher,
                                    WorkerStatus)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData, serialize_value

from cleargro_pipeline.orchestration import run_worker

# The run tag naming the run's worker process: "<pid>:<start time in clock ticks since boot>".
WORKER_TAG = "cleargro/run_worker"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Worker:
    """A run worker process, named so that a reused pid is not mistaken for it."""

    pid: int
    started: int

    @classmethod
    def of(cls, pid: int) -> Worker | None:
        started = _start_ticks(pid)
        return cls(pid, started) if started is not None else None

    @classmethod
    def from_run(cls, run: DagsterRun) -> Worker | None:
        pid, _, started = run.tags.get(WORKER_TAG, "").partition(":")
        return cls(int(pid), int(started)) if pid.isdigit() and started.isdigit() else None

    @property
    def tag(self) -> str:
        return f"{self.pid}:{self.started}"

    def is_alive(self) -> bool:
        return _start_ticks(self.pid) == self.started and _state(self.pid) not in ("Z", "X", None)

    def signal(self, signum: int) -> bool:
        if not self.is_alive():
            return False
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            return False
        return True


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces): field 3 onwards."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22, starttime


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (the loader and dbt children of a worker)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run in a process forked from a warm zygote (see the module docstring)."""

    def __init__(self, inst_data: ConfigurableClassData | None = None,
                 termination_grace_seconds: float = 30.0) -> None:
        self._inst_data = inst_data
        self._termination_grace_seconds = termination_grace_seconds
        self._context = multiprocessing.get_context("forkserver")
        self._lock = threading.Lock()
        self._zygote_pid: int | None = None
        self._zygote_code_version: float | None = None
        self._workers: dict[str, Any] = {}  # run id -> multiprocessing Process, until reaped
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"termination_grace_seconds": Field(
            float, is_required=False, default_value=30.0,
            description="Seconds a terminated run's worker has to stop after SIGINT before it "
                        "and its children are killed and the run is marked canceled.")}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData,
                          config_value: Mapping[str, Any]) -> WarmRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    # --- launching ---

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        _require_our_code_location(run)
        with self._lock:
            self._reap_finished()
            zygote_pid = self._ensure_zygote()
            process = self._context.Process(
                target=run_worker.execute_run, name=f"dagster-run-{run.run_id}",
                args=(run.run_id, serialize_value(self._instance.get_ref())))
            process.start()
            self._workers[run.run_id] = process
        worker = Worker.of(process.pid) or Worker(process.pid, 0)
        self._instance.add_run_tags(run.run_id, {WORKER_TAG: worker.tag})
        self._instance.report_engine_event(
            f"Launched run worker (pid {worker.pid}) forked from the zygote (pid {zygote_pid}).",
            run, cls=self.__class__)

    def _ensure_zygote(self) -> int | None:
        """Start the forkserver if it is not running (first launch, or it died) or holds code
        older than what is on disk now (`dagster dev` reloads edited code: runs must too);
        probe each new one once, so a failed warm-up is a clear warning here, not slow runs."""
        self._context.set_forkserver_preload(run_worker.PRELOAD)
        if self._zygote_code_version is not None and \
                run_worker.code_version() != self._zygote_code_version:
            log.info("The code changed since the run worker zygote started: replacing it.")
            # multiprocessing has no public way to stop its forkserver; running workers keep
            # running (they are the old zygote's children until they end).
            multiprocessing.forkserver._forkserver._stop()
        multiprocessing.forkserver.ensure_running()
        # multiprocessing keeps the forkserver's pid privately; a new pid is a new zygote.
        pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
        if pid != self._zygote_pid:
            self._zygote_pid = pid
            self._probe_zygote()
        return pid

    def _probe_zygote(self) -> None:
        receiver, sender = self._context.Pipe(duplex=False)
        probe = self._context.Process(target=run_worker.probe, args=(sender,),
                                      name="dagster-run-zygote-probe")
        probe.start()  # blocks until the zygote has finished its preload
        sender.close()
        state = receiver.recv() if receiver.poll(60) else {
            "warm": False, "pid": probe.pid, "reason": "the probe did not answer in 60 s"}
        probe.join(5)
        receiver.close()
        self._zygote_code_version = state.get("code_version")
        if state["warm"]:
            log.info("Run worker zygote (pid %s) is warm (warm-up %.1f s).", state["zygote_pid"],
                     state["warm_up_s"])
        else:
            log.warning("Run worker zygote (pid %s) is NOT warm: %s. Runs still work, but each "
                        "loads the code location itself (seconds per run).",
                        self._zygote_pid, state["reason"])

    def _reap_finished(self) -> None:
        """Release the finished workers' handles (one pipe each): a daemon launches thousands."""
        for run_id, process in list(self._workers.items()):
            if process.exitcode is not None:
                process.close()
                del self._workers[run_id]

    # --- termination and health ---

    def terminate(self, run_id: str) -> bool:
        if not self.has_instance:
            return False
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        worker = Worker.from_run(run)
        if worker is None or not worker.signal(signal.SIGINT):
            # No worker yet (a queued or starting run: one that starts now sees CANCELED and
            # stops) or none any more: nothing else will end the run.
            self._instance.report_run_canceled(
                run, message="Run canceled; it had no live run worker.")
            return True
        self._instance.report_engine_event(
            f"Sent SIGINT to run worker (pid {worker.pid}); it is killed if the run has not "
            f"stopped within {self._termination_grace_seconds:.0f} s.", run, cls=self.__class__)
        threading.Thread(target=self._kill_if_still_running, args=(run_id, worker),
                         name=f"terminate-{run_id}", daemon=True).start()
        return True

    def _kill_if_still_running(self, run_id: str, worker: Worker) -> None:
        deadline = time.monotonic() + self._termination_grace_seconds
        while time.monotonic() < deadline:
            run = self._instance.get_run_by_id(run_id)
            if run is None or (run.is_finished and not worker.is_alive()):
                return
            time.sleep(0.5)
        for pid in [*_descendants(worker.pid), worker.pid]:
            Worker(pid, _start_ticks(pid) or -1).signal(signal.SIGKILL)
        run = self._instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            self._instance.report_run_canceled(
                run, message=f"Run worker (pid {worker.pid}) did not stop within "
                             f"{self._termination_grace_seconds:.0f} s of SIGINT and was killed.")

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = Worker.from_run(run)
        if worker is None:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, "No run worker is recorded on the run.")
        # The process itself first: the exit code a replaced zygote would report is unknown.
        if worker.is_alive():
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=worker.tag)
        with self._lock:  # the launching thread may be reaping this handle
            process = self._workers.get(run.run_id)
            exitcode = process.exitcode if process is not None else None
        if exitcode is not None:
            status = WorkerStatus.SUCCESS if exitcode == 0 else WorkerStatus.FAILED
            return CheckRunHealthResult(status, f"Run worker (pid {worker.pid}) exited with "
                                        f"{_describe_exit(exitcode)}.", run_worker_id=worker.tag)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"Run worker (pid {worker.pid}) is no "
                                    "longer running.", run_worker_id=worker.tag)

    def join(self, timeout: int = 30) -> None:
        deadline = time.monotonic() + timeout
        for process in list(self._workers.values()):
            process.join(max(0.0, deadline - time.monotonic()))


def _require_our_code_location(run: DagsterRun) -> None:
    """The zygote holds one code location: a run of another fails at once, with the reason."""
    origin = run.job_code_origin
    pointer = origin.repository_origin.code_pointer if origin else None
    if not (isinstance(pointer, ModuleCodePointer)
            and pointer.module == run_worker.CODE_LOCATION_MODULE
            and pointer.fn_name == run_worker.CODE_LOCATION_ATTRIBUTE):
        where = pointer.describe() if pointer else "no code origin"
        raise DagsterLaunchFailedError(
            f"WarmRunLauncher runs only the code location {run_worker.CODE_LOCATION_MODULE}:"
            f"{run_worker.CODE_LOCATION_ATTRIBUTE}; this run's job comes from {where}.")


def _describe_exit(exitcode: int) -> str:
    if exitcode < 0:
        return f"signal {signal.Signals(-exitcode).name}"
    return f"status {exitcode}"
