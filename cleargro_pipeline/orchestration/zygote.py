"""The zygote's preload: `WarmRunLauncher`'s forkserver imports this module once, and every run
worker forked from it starts with the code location loaded the way the run will load it (by its
code pointer, through Dagster's reconstruction), `loaded_defs()` built, and dbt imported with the
project parsed (`warehouse.dbt.preload`). A failure is recorded in `WARM_UP`,
never raised: the forkserver must keep serving (its preload survives only an ImportError), and a
worker forked from a cold zygote still runs, only slower; the launcher's probe reports it. The
code location is named, not imported, here: orchestration sits below the definitions.
"""

from __future__ import annotations

import gc
import importlib
import os
import time
from typing import Any

from dagster._core.definitions.reconstruct import ReconstructableRepository

from cleargro_pipeline.orchestration import run_worker
from cleargro_pipeline.settings import PROJECT_ROOT
from cleargro_pipeline.warehouse import dbt as tenant_dbt

# The job whose definition (asset graph, dbt assets) the warm-up builds once.
WARMED_JOB = "tenant_refresh"


def _warm_up() -> dict[str, Any]:
    started = time.perf_counter()
    version = run_worker.code_version()  # before loading: a later edit makes this zygote stale
    try:
        location = importlib.import_module(run_worker.CODE_LOCATION_MODULE)
        if hasattr(location, "loaded_defs"):
            location.loaded_defs()
        repository = ReconstructableRepository.for_module(
            run_worker.CODE_LOCATION_MODULE, run_worker.CODE_LOCATION_ATTRIBUTE,
            working_directory=str(PROJECT_ROOT))
        repository.get_reconstructable_job(WARMED_JOB).get_definition()
        tenant_dbt.preload()
    except Exception as error:  # noqa: BLE001 - recorded for the launcher, see the docstring
        # The class only: a message could quote configuration.
        return {"ok": False, "pid": os.getpid(), "error": type(error).__name__,
                "seconds": time.perf_counter() - started}
    # Objects that exist now are shared with every worker: keep the workers' garbage collector
    # from walking (and so copying) their pages.
    gc.collect()
    gc.freeze()
    return {"ok": True, "pid": os.getpid(), "seconds": time.perf_counter() - started,
            "code_version": version}


WARM_UP = _warm_up()
