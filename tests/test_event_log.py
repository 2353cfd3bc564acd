"""The instance's event log (orchestration/event_log.py): Dagster's SQLite storage with its engines
kept. What it must keep of Dagster's: every event readable by another instance on the same home
(the webserver, the daemon), writes from a forked run worker beside its parent's, a deleted run
gone; what it changes: commits at `synchronous=NORMAL` in WAL mode."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import dagster as dg
import pytest

from cleargro_pipeline import bootstrap
from cleargro_pipeline.orchestration.event_log import KEPT_SHARDS, KeptEngineSqliteEventLogStorage


@dg.asset
def numbers() -> int:
    return 1


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(bootstrap.dagster_yaml(home))
    return home


def _materialize(instance: dg.DagsterInstance) -> str:
    result = dg.materialize([numbers], instance=instance)
    assert result.success
    return result.run_id


def _engine_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.message for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if e.message.startswith("note ")]


def test_events_written_are_read_by_another_instance(home: Path) -> None:
    with dg.DagsterInstance.from_config(str(home)) as writer:
        assert isinstance(writer.event_log_storage, KeptEngineSqliteEventLogStorage)
        run_id = _materialize(writer)
        written = len(writer.all_logs(run_id))
    with dg.DagsterInstance.from_config(str(home)) as reader:
        assert len(reader.all_logs(run_id)) == written > 5
        latest = reader.get_latest_materialization_event(dg.AssetKey("numbers"))
        assert latest is not None and latest.run_id == run_id
    assert (home / "history" / "runs" / f"{run_id}.db").is_file()


def test_commits_are_synchronous_normal_in_wal_mode(home: Path) -> None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_id = _materialize(instance)
        storage = instance.event_log_storage
        for shard in (run_id, "index"):
            with storage._connect(shard) as conn:  # noqa: SLF001 - the connection it writes with
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def _child_writes(instance: dg.DagsterInstance, run_id: str) -> None:
    run = instance.get_run_by_id(run_id)
    for i in range(20):
        instance.report_engine_event(f"note child {i}", run)


def test_a_forked_worker_writes_beside_its_parent(home: Path) -> None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_id = _materialize(instance)  # the parent's engines are open before the fork
        run = instance.get_run_by_id(run_id)
        child = multiprocessing.get_context("fork").Process(target=_child_writes,
                                                           args=(instance, run_id))
        child.start()
        for i in range(20):
            instance.report_engine_event(f"note parent {i}", run)
        child.join(60)
        assert child.exitcode == 0
        messages = _engine_messages(instance, run_id)
    assert sorted(messages) == sorted([f"note child {i}" for i in range(20)]
                                      + [f"note parent {i}" for i in range(20)])
    # Each writer's own events stay in its order.
    assert [m for m in messages if "child" in m] == [f"note child {i}" for i in range(20)]


def test_many_runs_keep_a_bounded_set_of_engines(home: Path) -> None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_ids = [_materialize(instance) for _ in range(KEPT_SHARDS + 2)]
        assert len(instance.event_log_storage._engines) <= KEPT_SHARDS  # noqa: SLF001
        # A run whose engine was dropped is still read and written in full.
        first = instance.get_run_by_id(run_ids[0])
        instance.report_engine_event("note again", first)
        assert _engine_messages(instance, run_ids[0]) == ["note again"]


def test_a_deleted_run_is_gone_and_its_id_starts_afresh(home: Path) -> None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_id = _materialize(instance)
        run = instance.get_run_by_id(run_id)
        instance.delete_run(run_id)
        shard = Path(instance.event_log_storage.path_for_shard(run_id))
        for suffix in ("", "-wal", "-shm"):  # as the deletion job removes the shard's files
            Path(f"{shard}{suffix}").unlink(missing_ok=True)
        assert not shard.exists()
        assert instance.all_logs(run_id) == []
        # The same id written again (a run record re-created) gets a new, initialised shard.
        instance.add_run(run)
        instance.report_engine_event("note reborn", run)
        assert _engine_messages(instance, run_id) == ["note reborn"]



@dg.asset
def marked() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"note": "marker-7f3a"})


def test_emptying_the_index_log_leaves_no_deleted_row_on_disk(home: Path) -> None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_id = dg.materialize([marked], instance=instance).run_id
        index = Path(instance.event_log_storage.path_for_shard("index"))
        wal = Path(f"{index}-wal")
        assert b"marker-7f3a" in index.read_bytes() + wal.read_bytes()
        instance.delete_run(run_id)
        instance.wipe_assets([dg.AssetKey("marked")])
        assert wal.stat().st_size > 0  # the engine is kept: the log is not emptied on its own
        instance.event_log_storage.truncate_index_log()
        assert wal.stat().st_size == 0
        assert b"marker-7f3a" not in index.read_bytes()  # secure_delete zeroed freed pages
