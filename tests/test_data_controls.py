"""Customer data controls through the CLI and Dagster: backup and restore, scheduled backups
and their purge (the library behaviour is in test_backups.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import polars as pl
from click.testing import CliRunner

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.alerts import service
from cleargro_pipeline.cli import cli
from cleargro_pipeline.controls import backups, deletion
from cleargro_pipeline.definitions import loaded_defs
from cleargro_pipeline.defs.data_controls import (
    deletion_requests,
    nightly_backups,
    privacy_requests_sensor,
)
from cleargro_pipeline.orchestration.partitions import sync_tenant_partitions
from cleargro_pipeline.privacy import request_log
from cleargro_pipeline.orchestration.partitions import dagster_instance
from cleargro_pipeline.security import audit, secret_store


def _rows(tenant: str) -> int:
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        return conn.execute("select count(*) from raw_shop.orders").fetchone()[0]


def _fill(tenant: str, n: int) -> None:
    with warehouse.open_warehouse(tenant, purpose="test") as conn:
        conn.execute("create schema if not exists raw_shop")
        conn.execute("create or replace table raw_shop.orders as select range as id from range(?)", [n])


def _audited_steps(run_id: str) -> list[tuple]:
    """(action, tenant, step, outcome, error) of a run's entries in the audit log."""
    return [(e["action"], e["tenant"], e["detail"]["step"], e["detail"].get("outcome"),
             e["detail"].get("error")) for e in audit.entries()
            if e["action"].startswith("job_") and e["detail"]["run_id"] == run_id]


def test_cli_backup_list_and_restore(tenant):
    _fill(tenant, 100)
    runner = CliRunner()
    taken = runner.invoke(cli, ["backup", "--tenant", tenant])
    assert taken.exit_code == 0, taken.output
    backup_id = taken.stdout.strip().splitlines()[-1]
    assert [b.id for b in backups.list_backups(tenant)] == [backup_id]
    listed = runner.invoke(cli, ["backup", "list", "--tenant", tenant])
    assert backup_id in listed.output and "100 rows" in listed.output

    _fill(tenant, 7)
    restored = runner.invoke(cli, ["restore", "--tenant", tenant, "--backup", backup_id])
    assert restored.exit_code == 0, restored.output
    assert _rows(tenant) == 100
    assert "the warehouse it replaced is backup" in restored.output  # nothing lost
    unknown = runner.invoke(cli, ["restore", "--tenant", tenant, "--backup", "nope"])
    assert unknown.exit_code != 0 and backup_id in str(unknown.exception)


def test_scheduled_backup_asset_and_purge_job(tenant):
    defs = loaded_defs()

    _fill(tenant, 3)
    instance = dagster_instance()
    with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 11, 29, 5, tzinfo=timezone.utc)) as context:
        requests = list(nightly_backups(context))
    assert [r.partition_key for r in requests] == [tenant]

    result = defs.resolve_job_def("tenant_backups").execute_in_process(
        instance=instance, partition_key=tenant)
    assert result.success
    (event,) = result.asset_materializations_for_node("tenant_backup")
    (backup,) = backups.list_backups(tenant)
    assert event.metadata["backup_id"].value == backup.id and backup.reason == "scheduled"
    assert _audited_steps(result.run_id) == [
        ("job_started", tenant, "tenant_backup", None, None),
        ("job_finished", tenant, "tenant_backup", "succeeded", None)]

    # The purge job keeps a fresh backup; one 91 days old goes.
    backups.take(tenant, now=datetime.now(timezone.utc) - timedelta(days=91))
    assert len(backups.list_backups(tenant)) == 2
    purge = defs.resolve_job_def("purge_expired_copies").execute_in_process(instance=instance)
    assert purge.success
    assert [b.id for b in backups.list_backups(tenant)] == [backup.id]
    steps = _audited_steps(purge.run_id)
    assert sorted((action, step) for action, _, step, _, _ in steps) == sorted(
        (action, step) for action in ("job_started", "job_finished")
        for step in ("purge_old_backups", "purge_expired_exports", "purge_shopper_exports"))
    audit.verify()


def test_a_failed_data_control_step_is_audited_with_its_error_class(tenant):
    defs = loaded_defs()

    result = defs.resolve_job_def("tenant_retention").execute_in_process(
        instance=dagster_instance(), raise_on_error=False,
        run_config={"ops": {"apply_retention": {"config": {"tenant": "ghost"}}}})
    assert not result.success
    assert _audited_steps(result.run_id) == [
        ("job_started", "ghost", "apply_retention", None, None),
        ("job_finished", "ghost", "apply_retention", "failed", "UnknownTenant")]


def test_cli_export_prints_the_key_once_and_the_requester_opens_it(tenant, tmp_path):
    _fill(tenant, 42)
    archive = tmp_path / "export.cgx"
    runner = CliRunner()
    made = runner.invoke(cli, ["export", "--tenant", tenant, "--out", str(archive)])
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert key.startswith("cgx1-") and archive.stat().st_mode & 0o777 == 0o600
    opened = runner.invoke(cli, ["export-open", str(archive), "--to", str(tmp_path / "out")],
                           input=key + "\n")
    assert opened.exit_code == 0, opened.output
    assert pl.read_parquet(tmp_path / "out" / "tables" / "raw_shop.orders.parquet").height == 42
    wrong = runner.invoke(cli, ["export-open", str(archive), "--to", str(tmp_path / "o2")],
                          input="cgx1-" + "A" * 43 + "\n")
    assert wrong.exit_code != 0


def test_deletion_request_sensor_job_and_certificate(tenant, tmp_path):
    defs = loaded_defs()

    _fill(tenant, 5)
    tenants.add("other")
    _fill("other", 9)
    runner = CliRunner()
    assert runner.invoke(cli, ["delete", "--tenant", tenant]).exit_code != 0  # a reason is required
    requested = runner.invoke(cli, ["delete", "--tenant", tenant, "--reason", "merchant left"])
    assert requested.exit_code == 0 and "pending" in requested.output
    instance = dagster_instance()
    (request,) = list(deletion_requests(dg.build_sensor_context(instance=instance)))
    result = defs.resolve_job_def("tenant_deletion").execute_in_process(
        instance=instance, run_config=request.run_config, tags=request.tags)
    assert result.success
    assert not tenants.exists(tenant) and _rows("other") == 9
    assert [(a, o) for a, _, _, o, _ in _audited_steps(result.run_id)] == [
        ("job_started", None), ("job_finished", "succeeded")]
    assert list(deletion_requests(dg.build_sensor_context(instance=instance))) == []

    certificate = deletion.status(tenant).certificate
    checked = runner.invoke(cli, ["verify-certificate", str(certificate)])
    assert checked.exit_code == 0 and f"tenant '{tenant}'" in checked.output
    edited = tmp_path / "edited.json"
    raw = bytearray(certificate.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    edited.write_bytes(bytes(raw))
    assert runner.invoke(cli, ["verify-certificate", str(edited)]).exit_code != 0


def test_delete_now_prints_the_certificate_last_and_overdue_requests_alert(tenant):
    tenants.add("late")
    deletion.request("late", "cancelled", "registry",
                     now=datetime.now(timezone.utc) - timedelta(days=26))
    assert "late" in deletion.deleting()
    active = service.run("late", instance=dagster_instance()).active
    assert [(a.alert_type, a.severity) for a in active] == [("deletion_overdue", "critical")]

    _fill(tenant, 3)
    done = CliRunner().invoke(cli, ["delete", "--tenant", tenant, "--now"])
    assert done.exit_code == 0, done.output
    last = done.output.strip().splitlines()[-1]
    assert last.endswith(".json") and deletion.verify_certificate(last).tenant == tenant


def test_cancelling_a_tenant_requests_its_deletion_and_stops_its_schedules(tenant):
    cancelled = CliRunner().invoke(cli, ["tenants", "cancel", tenant, "--reason", "closed shop"])
    assert cancelled.exit_code == 0, cancelled.output
    assert deletion.status(tenant).source == "registry" and deletion.is_deleting(tenant)
    assert tenant not in sync_tenant_partitions(dagster_instance())


def test_privacy_request_sensor_runs_the_job_for_pending_shopper_requests(tenant):
    defs = loaded_defs()

    _fill(tenant, 4)
    recorded = request_log.record(request_log.CUSTOMERS_DATA_REQUEST, tenant,
                                       {"customer_id": "6200000005"}, source="cli")
    instance = dagster_instance()
    (request,) = list(privacy_requests_sensor(dg.build_sensor_context(instance=instance)))
    assert request.tags["cleargro/tenant"] == tenant
    result = defs.resolve_job_def("shopper_privacy_requests").execute_in_process(
        instance=instance, run_config=request.run_config, tags=request.tags)
    assert result.success
    assert request_log.get(recorded.request_id).status == "done"
    assert list(privacy_requests_sensor(dg.build_sensor_context(instance=instance))) == []


def test_cli_scope_retention_and_disconnect(tenant):
    _fill(tenant, 2)
    secret_store.put(tenant, "source.shop.access_token", "shpat-test")
    runner = CliRunner()
    configured = runner.invoke(cli, ["tenants", "configure", tenant, "--scope", "shopper_level=false",
                                     "--retention-months", "12"])
    assert configured.exit_code == 0, configured.output
    shown = json.loads(runner.invoke(cli, ["tenants", "show", tenant]).output)
    assert shown["retention_months"] == 12 and shown["scopes"]["shopper_level"] is False
    assert shown["data_scope"]
    bad = runner.invoke(cli, ["tenants", "configure", tenant, "--retention-months", "soon"])
    assert bad.exit_code != 0
    gone = runner.invoke(cli, ["disconnect", "--tenant", tenant, "--source", "shop"])
    assert gone.exit_code == 0, gone.output
    assert "source.shop.access_token" in gone.output and secret_store.names(tenant) == []
