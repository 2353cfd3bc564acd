"""A whole-project build leaves the views a build of the same code, vars and raw tables left
(they hold no data) and still runs their tests; a view re-created since, or a raw table whose
columns changed (the staging views stage what exists), makes the next build re-create every
view. Real Dagster runs of a copy of the session's demo, real dbt, a real encrypted file."""

from __future__ import annotations

import dagster as dg
import pytest
from conftest import private_demo

from cleargro_pipeline import bootstrap, warehouse
from cleargro_pipeline.defs.transformation import dbt_models
from cleargro_pipeline.runner import materialize_tenant
from cleargro_pipeline.warehouse import dbt as tenant_dbt

STAGED = "staging.stg_shop__orders"


@pytest.fixture(scope="module")
def demo_copy(built_demo, tmp_path_factory):
    with private_demo(built_demo, tmp_path_factory.mktemp("view_reuse")):
        bootstrap.init()
        yield "demo"


def _view_keys() -> set[dg.AssetKey]:
    return {key for key, spec in dbt_models.specs_by_key.items()
            if spec.metadata["dagster-dbt/materialization_type"] == "view"}


def _run(tenant: str) -> tuple[set[dg.AssetKey], dict[dg.AssetKey, bool]]:
    """One scheduled-style run: the assets it materialized, and each view's checks (passed?)."""
    run_id = materialize_tenant(tenant).run_id
    instance = dg.DagsterInstance.get()
    events = {kind: [r.event_log_entry.dagster_event.event_specific_data for r in
                     instance.get_records_for_run(run_id, of_type=kind, limit=10_000).records]
              for kind in (dg.DagsterEventType.ASSET_MATERIALIZATION,
                           dg.DagsterEventType.ASSET_CHECK_EVALUATION)}
    built = {m.materialization.asset_key for m in events[dg.DagsterEventType.ASSET_MATERIALIZATION]}
    checks: dict[dg.AssetKey, bool] = {}
    for evaluation in events[dg.DagsterEventType.ASSET_CHECK_EVALUATION]:
        checks[evaluation.asset_key] = checks.get(evaluation.asset_key, True) and evaluation.passed
    return built, checks


def _comment(tenant: str, relation: str) -> str | None:
    schema, name = relation.split(".")
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        (comment,) = conn.execute("select comment from duckdb_views() where schema_name = ? "
                                  "and view_name = ?", [schema, name]).fetchone()
    return comment


def test_a_build_with_nothing_changed_reuses_every_view_and_tests_them(demo_copy):
    views = _view_keys()
    assert len(views) == len(tenant_dbt._project_views()[1]) > 10
    stamp = _comment(demo_copy, STAGED)  # the session's build stamped them
    assert stamp and stamp.startswith(tenant_dbt.VIEW_STAMP)

    built, checks = _run(demo_copy)
    assert not built & views and set(dbt_models.keys) - views <= built
    tested = {key for key in views if key in checks}
    assert tested and all(checks[key] for key in tested)
    assert _comment(demo_copy, STAGED) == stamp


def test_a_view_recreated_since_makes_the_next_build_recreate_and_stamp_them_all(demo_copy):
    stamp = _comment(demo_copy, STAGED)
    with warehouse.open_warehouse(demo_copy, purpose="test") as conn:
        (sql,) = conn.execute("select sql from duckdb_views() where schema_name = 'staging' "
                              "and view_name = 'stg_shop__orders'").fetchone()
        conn.execute(sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
    assert _comment(demo_copy, STAGED) is None

    built, _ = _run(demo_copy)
    assert _view_keys() <= built
    assert _comment(demo_copy, STAGED) == stamp


def test_a_raw_table_whose_columns_changed_makes_the_views_recreated(demo_copy):
    stamp = _comment(demo_copy, STAGED)
    with warehouse.open_warehouse(demo_copy, purpose="test") as conn:
        conn.execute("alter table raw_shop.orders add column app_note varchar")

    built, _ = _run(demo_copy)
    assert _view_keys() <= built
    new_stamp = _comment(demo_copy, STAGED)
    assert new_stamp and new_stamp != stamp
