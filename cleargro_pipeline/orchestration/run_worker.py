"""What a run worker does: one process per run, forked by `WarmRunLauncher` from its zygote,
executes the run exactly as `dagster api execute_run` does (Dagster's own command body: the job
rebuilt from the run's code origin, "Started process" and "Process exited" engine events,
failures written to the event log by the executor) after saying in the run's log whether it
started warm. This module is cheap to import (the daemon imports it to name the worker's entry
point); `zygote` is the module whose import warms, and this one only reads what it left.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from dagster._cli.api import _execute_run_command_body
from dagster._core.instance import DagsterInstance, InstanceRef
from dagster._serdes import deserialize_value
from dagster._utils.interrupts import capture_interrupts

# The code location the zygote warms and the launcher accepts: workspace.yaml's python_module.
CODE_LOCATION_MODULE = "cleargro_pipeline.definitions"
CODE_LOCATION_ATTRIBUTE = "defs"
# The zygote's preload: "__main__" first (multiprocessing re-imports the launching process's main
# script in every child; preloaded, that costs nothing), then the module whose import warms.
ZYGOTE_MODULE = "cleargro_pipeline.orchestration.zygote"
PRELOAD = ["__main__", ZYGOTE_MODULE]


def code_version() -> float:
    """When the code a worker would run last changed: the newest of the package's modules and
    dbt's manifest. A zygote warmed before that holds stale code, and is replaced."""
    package = Path(__file__).resolve().parents[1]
    files = [*package.rglob("*.py"), package.parent / "dbt_project" / "target" / "manifest.json"]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


def execute_run(run_id: str, instance_ref: str) -> None:
    """The worker's entry point: execute one run, exit 1 if it failed (the launcher's health
    check reads the exit code). `instance_ref` is Dagster's serialized InstanceRef: storage
    locations only; secrets reach the worker through the environment it inherits."""
    with capture_interrupts():
        ref = deserialize_value(instance_ref, InstanceRef)
        with DagsterInstance.from_ref(ref) as instance:
            run = instance.get_run_by_id(run_id)
            if run is not None:
                instance.report_engine_event(describe(warmth()), run)
            failed = _execute_run_command_body(run_id, instance, _discard,
                                               set_exit_code_on_failure=True)
    sys.exit(failed)


def _discard(_event: Any) -> None:
    # `dagster api execute_run` buffers every event it yields and never reads the buffer; the
    # events are in the event log already.
    return None


def warmth() -> dict[str, Any]:
    """How this process started: forked from a warm zygote (`warm`, the zygote's pid, its warm-up
    seconds), or not (`reason`). Also what the launcher's probe reports once per zygote."""
    zygote = sys.modules.get(ZYGOTE_MODULE)
    state = getattr(zygote, "WARM_UP", None)
    if state is None:
        return {"warm": False, "pid": os.getpid(),
                "reason": f"the zygote did not preload {ZYGOTE_MODULE} (multiprocessing ignores "
                          "an ImportError in a forkserver preload)"}
    if state["pid"] == os.getpid():
        return {"warm": False, "pid": os.getpid(), "reason": "this process was not forked from a zygote"}
    if not state["ok"]:
        return {"warm": False, "pid": os.getpid(), "zygote_pid": state["pid"],
                "reason": f"the zygote's warm-up failed ({state['error']})"}
    return {"warm": True, "pid": os.getpid(), "zygote_pid": state["pid"],
            "warm_up_s": state["seconds"],
            "code_version": state["code_version"]}


def describe(state: dict[str, Any]) -> str:
    if state["warm"]:
        return (f"Run worker (pid {state['pid']}) forked from the warm zygote (pid "
                f"{state['zygote_pid']}, warmed in {state['warm_up_s']:.1f} s).")
    return (f"Run worker (pid {state['pid']}) started cold: {state['reason']}; it loads the code "
            "location itself, which is slower.")


def probe(sender: Any) -> None:
    """Entry point of the launcher's one probe per zygote: report how a child of it starts."""
    sender.send(warmth())
    sender.close()
