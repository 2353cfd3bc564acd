"""`make bench-fleet [N=200]`: one daily cycle of N small tenants through the Dagster instance's
run queue, as the schedule runs it in production, on this machine.

Setup (not timed): N small demo tenants with different seeds, each synced up to a few days
before the demo's last day (its history loaded and every dbt model built once, in parallel,
outside Dagster). The cycle (timed): a real `dagster-daemon` on `cleargro init`'s dagster.yaml
(queue limits, `WarmRunLauncher`, run monitoring), the real `daily_tenant_refresh` schedule
evaluated for the next tick and its run requests submitted through the scheduler's own code
path; every tenant gets one new day of data. One extra tenant's run goes first, untimed, so
the launcher's zygote is warm as it is in a daemon that has been running for a while.

Prints `fleet: tenants=N cycle_s=<s> tenants_per_hour=<r> p95_tenant_s=<s> peak_rss_mb=<MB>
lock_errors=<n> failed_runs=<n>`: cycle_s from the first submission to the last run's end;
p95_tenant_s over the runs' own time (start to end, without queueing); peak_rss_mb the largest
sum of proportional set sizes (PSS: pages shared by forked workers counted once) of every
process of the daemon's session, sampled every 0.2 s.

`--workdir DIR` keeps the prepared tenants: a later call with the same DIR reuses them (each
tenant can take `HOLD_BACK_DAYS` cycles, one new day each), so the curve for several N does not
prepare the tenants again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path

from cleargro_pipeline import bootstrap, ingest, tenants
from cleargro_pipeline.benchmarks import instance as bench_instance
from cleargro_pipeline.warehouse import dbt as tenant_dbt

# Days each prepared tenant is held back: how many daily cycles it can take.
HOLD_BACK_DAYS = 3
WARM_UP_TENANT = "fleet_warmup"
STATE_FILE = "fleet.json"


def tenant_name(index: int) -> str:
    return f"fleet_{index:04d}"


def _seed(name: str) -> int:
    """Each tenant its own demo shop: fleet_0007 has seed 1007, the warm-up tenant 999."""
    return 999 if name == WARM_UP_TENANT else 1000 + int(name.rsplit("_", 1)[1])


def _configure(name: str, hold_back_days: int) -> None:
    for system, config in tenants.demo_sources("small", hold_back_days, _seed(name)).items():
        tenants.configure_source(name, system, config)


def _prepare_one(name: str) -> str:
    """History up to the hold-back day: the loads and a full dbt build, as a first sync."""
    synced = tenants.synced_sources(tenants.get(name))
    plans = {system: ingest.DemoPlan(size="small", seed=int(config["seed"]), tenant=name,
                                     hold_back_days=int(config.get("hold_back_days", 0)))
             for system, config in synced.items()}
    ingest.load(name, plans, tuple(plans))
    built = tenant_dbt.run(name, tenant_dbt.build_args(name), purpose="fleet-setup")
    if not built.ok:
        raise RuntimeError(f"fleet setup of {name}: {built.describe_failure()}")
    return name


def prepare(state: dict, wanted: int) -> None:
    """Create the tenants missing from `state` and sync them."""
    new = [tenant_name(i) for i in range(state["prepared"], wanted)]
    if WARM_UP_TENANT not in state["days_left"]:
        new.insert(0, WARM_UP_TENANT)
    if not new:
        return
    for name in new:
        tenants.add(name, tenants.demo_sources("small", HOLD_BACK_DAYS, _seed(name)))
    tenant_dbt.preload()  # parsed once here; every forked worker starts from it
    started = time.perf_counter()
    workers = os.cpu_count() or 1
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        for done, name in enumerate(pool.map(_prepare_one, new), 1):
            state["days_left"][name] = HOLD_BACK_DAYS
            if done % 25 == 0 or done == len(new):
                print(f"  setup: {done}/{len(new)} tenants synced "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    state["prepared"] = max(state["prepared"], wanted)


class MemorySampler:
    """Peak of the summed PSS of a set of processes, sampled on a thread."""

    def __init__(self, pids, interval_s: float = 0.2):
        self._pids, self._interval_s = pids, interval_s
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pss-sampler")

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(pid) for pid in self._pids()))


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _next_day(state: dict, names: list[str]) -> None:
    for name in names:
        if state["days_left"][name] < 1:
            raise SystemExit(f"bench-fleet: {name} has no held-back day left; use a new --workdir")
        state["days_left"][name] -= 1
        _configure(name, state["days_left"][name])


def _tick(state: dict) -> datetime:
    state["ticks"] += 1
    return datetime(2026, 12, 1, 4, tzinfo=timezone.utc) + timedelta(days=state["ticks"])


def run_cycle(state: dict, names: list[str], dagster_home: Path) -> dict:
    with bench_instance.running_daemon(dagster_home) as daemon, \
            bench_instance.schedule_driver() as driver:
        _next_day(state, [WARM_UP_TENANT])
        warm = bench_instance.submit_schedule_tick(driver, _tick(state), tenants=[WARM_UP_TENANT])
        warm_outcome = bench_instance.wait_for_runs(driver.instance, warm)[0]
        print(f"  warm-up run: {warm_outcome.status} in {warm_outcome.wall_s:.1f} s "
              "(starts the launcher's zygote)", flush=True)
        _next_day(state, names)
        with MemorySampler(daemon.pids) as memory:
            started = time.time()
            run_ids = bench_instance.submit_schedule_tick(driver, _tick(state), tenants=set(names))
            submitted = time.time() - started
            outcomes = bench_instance.wait_for_runs(driver.instance, run_ids, timeout_s=6 * 3600)
        cycle_s = max(_end(driver.instance, o.run_id) for o in outcomes) - started
        lock_errors = bench_instance.lock_errors(driver.instance, run_ids)
    run_seconds = sorted(o.run_s for o in outcomes if o.run_s is not None)
    return {
        "tenants": len(names), "cycle_s": cycle_s, "submit_s": submitted,
        "tenants_per_hour": len(names) / cycle_s * 3600,
        "p95_tenant_s": run_seconds[max(0, math.ceil(0.95 * len(run_seconds)) - 1)]
        if run_seconds else float("nan"),
        "median_tenant_s": statistics.median(run_seconds) if run_seconds else float("nan"),
        "peak_rss_mb": memory.peak_kb / 1024, "lock_errors": lock_errors,
        "failed_runs": sum(not o.ok for o in outcomes),
    }


def _end(instance, run_id: str) -> float:
    record = instance.get_run_record_by_id(run_id)
    return record.end_time or time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the prepared tenants here and reuse them (default: a new "
                             "temporary folder, removed at the end)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cleargro-fleet-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update({"CLEARGRO_DATA_DIR": str(workdir / "data"),
                       "DAGSTER_HOME": str(workdir / "data" / "dagster_home")})
    os.environ.pop("CLEARGRO_MASTER_KEY", None)  # the scratch folder's own local demo key
    state_file = workdir / STATE_FILE
    state = (json.loads(state_file.read_text()) if state_file.exists()
             else {"prepared": 0, "ticks": 0, "days_left": {}})
    try:
        bootstrap.init()
        print(f"fleet: preparing {args.tenants} small tenants in {workdir} (not timed)", flush=True)
        prepare(state, args.tenants)
        state_file.write_text(json.dumps(state))
        names = [tenant_name(i) for i in range(args.tenants)]
        result = run_cycle(state, names, Path(os.environ["DAGSTER_HOME"]))
        state_file.write_text(json.dumps(state))
        print(f"  submitting {result['tenants']} runs took {result['submit_s']:.1f} s; "
              f"median run {result['median_tenant_s']:.1f} s")
        print(f"fleet: tenants={result['tenants']} cycle_s={result['cycle_s']:.1f} "
              f"tenants_per_hour={result['tenants_per_hour']:.0f} "
              f"p95_tenant_s={result['p95_tenant_s']:.1f} peak_rss_mb={result['peak_rss_mb']:.0f} "
              f"lock_errors={result['lock_errors']} failed_runs={result['failed_runs']}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
