"""The Dagster code location: it loads, and its asset graph matches the committed snapshot
(regenerate with CLEARGRO_UPDATE_SNAPSHOTS=1 after an intended change, then review the diff)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from cleargro_pipeline.warehouse import dbt as tenant_dbt
from cleargro_pipeline.sources import contract

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.txt"


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    tenant_dbt.parse()
    # Imported after the parse: the dbt assets read the manifest when their module loads.
    from cleargro_pipeline.definitions import loaded_defs

    return loaded_defs()


def _graph_lines(defs: dg.Definitions) -> list[str]:
    graph = defs.resolve_asset_graph()
    lines = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        deps = ",".join(sorted(p.to_user_string() for p in node.parent_keys))
        lines.append(f"{key.to_user_string()} | group={node.group_name} | deps={deps}")
    return lines


def test_asset_graph_matches_snapshot(defs):
    text = "\n".join(_graph_lines(defs)) + "\n"
    if os.environ.get("CLEARGRO_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text()


def test_every_raw_table_is_an_asset_and_feeds_its_staging_model(defs):
    graph = defs.resolve_asset_graph()
    for raw in contract.TABLES:
        key = dg.AssetKey([raw.dataset, raw.name])
        assert key in graph.get_all_asset_keys(), key
        staging = dg.AssetKey(["staging", f"stg_{raw.source}__{raw.name}"])
        assert key in graph.get(staging).parent_keys, staging
        assert graph.get(key).group_name == raw.dataset


def test_tenants_are_partitions_and_tests_are_checks(defs):
    graph = defs.resolve_asset_graph()
    marts = [k for k in graph.get_all_asset_keys() if k.path[0] == "marts"]
    assert len(marts) >= 13
    assert all(graph.get(k).partitions_def.name == "tenants" for k in marts)
    checks = graph.asset_check_keys
    assert any(c.asset_key == dg.AssetKey(["marts", "fct_orders"]) for c in checks)
    assert defs.get_schedule_def("daily_tenant_refresh").cron_schedule == "0 4 * * *"


def test_daily_schedule_requests_one_run_per_tenant_with_its_sources(defs, data_dir):
    from cleargro_pipeline import tenants

    tenants.add("synced", {"shop": {"kind": "demo", "size": "small"}})
    tenants.add("imports-only")
    with dg.instance_for_test() as instance:
        schedule = defs.get_schedule_def("daily_tenant_refresh")
        context = dg.build_schedule_context(
            instance=instance, repository_def=defs.get_repository_def(),
            scheduled_execution_time=datetime(2026, 11, 28, 4))
        requests = {r.partition_key: r for r in schedule.evaluate_tick(context).run_requests}
        assert set(requests) == {"synced", "imports-only"}
        assert set(instance.get_dynamic_partitions("tenants")) == {"synced", "imports-only"}
    synced = {k.path[0] for k in requests["synced"].asset_selection}
    models = {"staging", "intermediate", "marts", "snapshots", "insights"}
    assert synced == {"raw_shop"} | models
    assert {k.path[0] for k in requests["imports-only"].asset_selection} == models
    assert requests["synced"].tags["cleargro/tenant"] == "synced"
    assert requests["synced"].run_key == "synced:2026-11-28"


@pytest.mark.parametrize("schedule_name, when, dimension, key, run_key", [
    ("weekly_report_schedule", datetime(2026, 11, 30, 6), "week", "2026-11-23", "2026-W48"),
    ("monthly_report_schedule", datetime(2026, 12, 1, 6), "month", "2026-11-01", "2026-11"),
])
def test_report_schedules_request_last_period_for_every_tenant(defs, data_dir, schedule_name, when,
                                                               dimension, key, run_key):
    from cleargro_pipeline import tenants

    tenants.add("north")
    tenants.add("south")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, repository_def=defs.get_repository_def(), scheduled_execution_time=when)
        requests = defs.get_schedule_def(schedule_name).evaluate_tick(context).run_requests
    assert sorted(r.partition_key.keys_by_dimension["tenant"] for r in requests) == ["north", "south"]
    assert {r.partition_key.keys_by_dimension[dimension] for r in requests} == {key}
    assert {r.run_key for r in requests} == {f"north:{run_key}", f"south:{run_key}"}
    assert requests[0].tags["cleargro/tenant"] in ("north", "south")


def test_report_periods_map_to_partition_keys():
    from cleargro_pipeline.orchestration.partitions import iso_week, month_key, week_key

    assert week_key("2026-W47") == "2026-11-16" and iso_week("2026-11-16") == "2026-W47"
    assert week_key("2027-W01") == "2027-01-04" and iso_week("2026-12-28") == "2026-W53"
    assert month_key("2026-11") == "2026-11-01"
