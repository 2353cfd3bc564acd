"""The production path of a scheduled run: a real `dagster-daemon` on `cleargro init`'s
dagster.yaml dequeues what the real `daily_tenant_refresh` schedule requests, and
`WarmRunLauncher` runs it in a worker forked from its warm zygote. Then an edit of the
code on disk replaces the zygote before the next run, and termination: a run stopped mid-dbt
ends CANCELED with its worker and every child gone, and the tenant's next run succeeds (its
lock was freed)."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from cleargro_pipeline.benchmarks import instance as bench_instance
from cleargro_pipeline.orchestration import launcher, run_worker
from cleargro_pipeline.security import keys, verify_at_rest
from cleargro_pipeline.settings import paths
from conftest import private_demo

TICK = datetime(2026, 11, 28, 4, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def stack(built_demo, tmp_path_factory):
    """A private copy of the session's demo tenant with a daemon running on it."""
    with private_demo(built_demo, tmp_path_factory.mktemp("launcher")) as data:
        with bench_instance.running_daemon(data / "dagster_home") as daemon, \
                bench_instance.schedule_driver() as driver:
            yield daemon, driver


def _wait_until_gone(worker: launcher.Worker, timeout_s: float = 30) -> None:
    """The worker exits shortly after its run's last event; its children must go with it."""
    deadline = time.monotonic() + timeout_s
    while worker.is_alive() or launcher._descendants(worker.pid):
        assert time.monotonic() < deadline, "the run's worker or one of its children lives on"
        time.sleep(0.2)


def _events(instance, run_id, event_type):
    return instance.get_records_for_run(run_id, of_type=event_type).records


def test_scheduled_run_is_launched_warm_and_succeeds(stack):
    daemon, driver = stack
    (run_id,) = bench_instance.submit_schedule_tick(driver, TICK, tenants=["demo"])
    (outcome,) = bench_instance.wait_for_runs(driver.instance, [run_id], timeout_s=600)
    assert outcome.ok, outcome
    run = driver.instance.get_run_by_id(run_id)
    worker = launcher.Worker.from_run(run)
    assert worker is not None
    _wait_until_gone(worker)
    messages = [r.event_log_entry.dagster_event.message or "" for r in
                _events(driver.instance, run_id, dg.DagsterEventType.ENGINE_EVENT)]
    assert any("forked from the warm zygote" in m for m in messages), messages
    steps = {r.event_log_entry.step_key for r in
             _events(driver.instance, run_id, dg.DagsterEventType.STEP_START)}
    assert steps == {"load_raw", "dbt_models"}
    # Both steps ran in the worker itself (in-process executor): one pid for every step event.
    pids = {r.event_log_entry.dagster_event.pid for r in
            _events(driver.instance, run_id, dg.DagsterEventType.STEP_SUCCESS)}
    assert pids == {worker.pid}
    # Neither the tenant's data key nor the master key reached the run's logs or events.
    secrets = [keys.unwrap_tenant_key("demo", "data", "test").hex(), os.environ[keys.MASTER_KEY_ENV]]
    assert verify_at_rest.scan([paths().dagster_home], secrets) == []


def _zygote_of(instance, run_id) -> str:
    for record in _events(instance, run_id, dg.DagsterEventType.ENGINE_EVENT):
        message = record.event_log_entry.dagster_event.message or ""
        if "forked from the warm zygote (pid " in message:
            return message.split("zygote (pid ", 1)[1].split(",", 1)[0]
    raise AssertionError(f"run {run_id} does not say which zygote it was forked from")


def test_edited_code_gets_a_new_zygote_and_terminated_run_leaves_no_process(stack):
    daemon, driver = stack
    earlier = driver.instance.get_runs(limit=1)[0].run_id
    # An edit on disk (as `dagster dev` reloads it): the next run must not run the old code.
    module = Path(run_worker.__file__)
    os.utime(module, (time.time(), time.time()))
    (run_id,) = bench_instance.submit_schedule_tick(driver, TICK + timedelta(days=1),
                                                    tenants=["demo"])
    deadline = time.monotonic() + 600
    while not [r for r in _events(driver.instance, run_id, dg.DagsterEventType.STEP_START)
               if r.event_log_entry.step_key == "dbt_models"]:
        assert time.monotonic() < deadline, "the run never reached its dbt step"
        time.sleep(0.2)
    assert _zygote_of(driver.instance, run_id) != _zygote_of(driver.instance, earlier)
    worker = launcher.Worker.from_run(driver.instance.get_run_by_id(run_id))
    assert driver.instance.run_launcher.terminate(run_id)
    (outcome,) = bench_instance.wait_for_runs(driver.instance, [run_id], timeout_s=120)
    assert outcome.status == dg.DagsterRunStatus.CANCELED.value
    _wait_until_gone(worker)
    (after,) = bench_instance.submit_schedule_tick(driver, TICK + timedelta(days=2),
                                                   tenants=["demo"])
    assert bench_instance.wait_for_runs(driver.instance, [after], timeout_s=600)[0].ok
