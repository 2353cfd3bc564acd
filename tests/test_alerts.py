"""Alert lifecycle, platform alerts and delivery through the sensors and the CLI: real Dagster
runs in a temp instance, a real encrypted warehouse, a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
from click.testing import CliRunner
from delivery_servers import WebhookReceiver

from cleargro_pipeline import bootstrap, ingest, tenants
from cleargro_pipeline.alerts import service
from cleargro_pipeline.cli import cli
from cleargro_pipeline.definitions import loaded_defs
from cleargro_pipeline.defs.alerting import alert_dispatch, alerts_on_run_failure
from cleargro_pipeline.defs.ingestion import raw_asset_keys
from cleargro_pipeline.orchestration.partitions import dagster_instance
from cleargro_pipeline.security import audit

TENANT = "acme"


@pytest.fixture
def acme(data_dir, monkeypatch):
    bootstrap.init()
    tenants.add(TENANT, tenants.demo_sources("small"))
    return TENANT


def _refresh(systems: list[str], monkeypatch, fault: str | None = None) -> dg.ExecuteInProcessResult:
    """A tenant_refresh run of some raw assets only (fast; the run is what the checks read)."""
    defs = loaded_defs()
    if fault:
        monkeypatch.setenv(ingest.FAULT_ENV, fault)
    else:
        monkeypatch.delenv(ingest.FAULT_ENV, raising=False)
    return defs.resolve_job_def("tenant_refresh").execute_in_process(
        instance=dagster_instance(), partition_key=TENANT, tags=tenants.run_tags(TENANT),
        asset_selection=[k for s in systems for k in raw_asset_keys(s)],
        raise_on_error=False)


def _active(outcome) -> dict[tuple[str, str], object]:
    return {(a.alert_type, a.entity_id): a for a in outcome.active}


def test_failed_runs_and_stale_sources_raise_one_alert_each_until_they_clear(acme, monkeypatch):
    rejected = _refresh(["ga4"], monkeypatch, fault="reject:ga4")
    assert not rejected.success
    outcome = service.run(acme, instance=dagster_instance())
    alert = _active(outcome)[("credentials_invalid", "ga4")]
    assert (alert.severity, alert.status, alert.entity_type) == ("critical", "open", "source")
    assert rejected.run_id in alert.link and "reconnect" in alert.message
    assert set(_active(outcome)) == {("credentials_invalid", "ga4")}

    # The same condition evaluated again is the same alert, not a new one.
    again = service.run(acme, instance=dagster_instance())
    assert again.raised == [] and [a.alert_id for a in again.active] == [alert.alert_id]

    failed = _refresh(["app"], monkeypatch, fault="fail:app")
    assert not failed.success
    outcome = service.run(acme, instance=dagster_instance())
    failure = _active(outcome)[("pipeline_failed", "tenant_refresh")]
    assert "load_raw" in failure.message and "(IngestError)" in failure.message
    assert "test fault" not in failure.message  # the class only, never the error's text
    # The refused source stays stopped, and its alert raised, whatever the later runs do.
    assert outcome.resolved == [] and ("credentials_invalid", "ga4") in _active(outcome)

    assert _refresh(["app", "ga4"], monkeypatch).success  # ga4 is skipped, not asked again
    outcome = service.run(acme, instance=dagster_instance())
    assert outcome.resolved == [failure.alert_id]
    assert set(_active(outcome)) == {("credentials_invalid", "ga4")}

    # Reconnecting the source (a new configuration) clears it.
    tenants.configure_source(acme, "ga4", dict(tenants.get(acme).sources["ga4"],
                                               credentials_rejected_at=None))
    outcome = service.run(acme, instance=dagster_instance())
    assert outcome.active == [] and outcome.resolved == [alert.alert_id]
    history = service.listing(acme, include_resolved=True)
    assert sorted(a.status for a in history) == ["resolved", "resolved"]

    # 40 h later without a sync every source is stale (app synced just now, the rest never).
    later = datetime.now(timezone.utc) + timedelta(hours=40)
    stale = _active(service.run(acme, instance=dagster_instance(), now=later))
    assert set(stale) == {("data_stale", s) for s in tenants.SOURCE_NAMES}
    assert stale[("data_stale", "app")].observed == pytest.approx(40, abs=0.2)
    assert stale[("data_stale", "app")].severity == "warning"


def test_sensors_deliver_each_alert_once_and_acknowledged_alerts_stay_quiet(acme, monkeypatch):
    receiver = WebhookReceiver()
    try:
        runner = CliRunner()
        configured = runner.invoke(cli, ["tenants", "configure", acme, "--webhook", receiver.url(),
                                         "--min-severity", "warning"])
        assert configured.exit_code == 0, configured.output
        assert receiver.url() not in tenants.get(acme).__dict__.__repr__()  # sealed, not in tenant.json

        failed = _refresh(["app"], monkeypatch, fault="fail:app")
        instance = dagster_instance()
        failure_event = next(e for e in failed.all_events if e.event_type_value == "PIPELINE_FAILURE")
        context = dg.build_run_status_sensor_context(
            sensor_name="alerts_on_run_failure", dagster_instance=instance,
            dagster_run=instance.get_run_by_id(failed.run_id), dagster_event=failure_event,
        ).for_run_failure()
        assert "1 raised" in alerts_on_run_failure(context).skip_message
        assert len(receiver.processed) == 1
        (payload,) = receiver.processed.values()
        (sent,) = payload["cleargro"]["alerts"]
        assert sent["alert_type"] == "pipeline_failed" and failed.run_id in sent["link"]

        # The periodic sensor finds nothing new to send: the receiver sees no second request.
        alert_dispatch(dg.build_sensor_context(instance=instance))
        assert receiver.requests == 1 and receiver.duplicates == []
        listed = runner.invoke(cli, ["alerts", "list", "--tenant", acme])
        assert "notified" in listed.output and sent["alert_id"] in listed.output

        acked = runner.invoke(cli, ["alerts", "ack", "--tenant", acme, sent["alert_id"]])
        assert acked.exit_code == 0, acked.output
        assert "acknowledged" in runner.invoke(cli, ["alerts", "list", "--tenant", acme]).output
        unknown = runner.invoke(cli, ["alerts", "ack", "--tenant", acme, "nope"])
        assert unknown.exit_code != 0 and "no open or notified alert 'nope'" in str(unknown.exception)
    finally:
        receiver.stop()
    actions = [e["action"] for e in audit.entries() if e["tenant"] == acme]
    assert {"alerts_evaluated", "alerts_dispatched", "alert_acknowledged"} <= set(actions)
    assert audit.verify().entries == len(audit.entries())  # raises if the chain is broken


def test_business_detections_of_the_latest_day_become_alerts_once(demo_env):
    # The small demo plants an outage on its as-of day (2026-11-27): revenue and orders fall.
    first = service.run(demo_env)
    active = _active(first)
    assert {("revenue_drop", "shop"), ("orders_drop", "shop")} <= set(active)
    drop = active[("revenue_drop", "shop")]
    assert drop.for_date.isoformat() == "2026-11-27" and drop.severity in ("warning", "critical")
    assert drop.observed < drop.expected and "below the median" in drop.message
    assert drop.link == "cleargro report --tenant demo --period 2026-W48 --out report.html"
    again = service.run(demo_env)
    assert again.raised == [] and again.resolved == []
    assert {a.alert_id for a in again.active} == {a.alert_id for a in first.active}


def test_a_sync_ended_by_a_spent_quota_raises_source_quota_until_a_sync_finishes(acme):
    from cleargro_pipeline.alerts import platform

    instance = dagster_instance()
    marker = platform.sync_marker("ga4")

    def sync(**notices: str) -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=marker, partition=TENANT, metadata={"rows_loaded": 10, **notices}))

    sync(quota_exhausted="tokensPerProjectPerDay")
    alert = _active(service.run(acme, instance=instance))[("source_quota", "ga4")]
    assert alert.severity == "warning" and "tokensPerProjectPerDay" in alert.message
    sync()  # the next day's sync finished
    outcome = service.run(acme, instance=instance)
    assert ("source_quota", "ga4") not in _active(outcome) and outcome.resolved == [alert.alert_id]
