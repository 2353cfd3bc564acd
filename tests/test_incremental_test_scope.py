"""Data tests of incremental models look at the rows the model's last run wrote
(dbt_project/macros/changed_rows.sql): every row after a full build, only the rebuilt rows after
an incremental run. Real dbt runs on a private copy of the session's demo tenant: defects planted
in old rows fail the tests after the full build, pass unseen through an incremental build, and
come back with `test_all_rows`; the same defects in the rows the run wrote fail."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from conftest import private_demo
from test_cli import cleargro

from cleargro_pipeline import warehouse
from cleargro_pipeline.warehouse import dbt as tenant_dbt

NOT_NULL = "not_null_columns_fct_orders_order_date__currency"
RELATIONSHIP = "relationships_fct_order_lines_order_id__order_id__ref_fct_orders_"
PLANTED = (NOT_NULL, RELATIONSHIP)
NEW_ORDER, NEW_LINE = 990_000_000_001, 990_000_000_011


@pytest.fixture(scope="module")
def demo(built_demo, tmp_path_factory):
    with private_demo(built_demo, tmp_path_factory.mktemp("test_scope")):
        yield "demo"


def test_every_incremental_model_records_its_window_and_its_generic_tests_use_it():
    nodes = tenant_dbt.manifest()["nodes"]
    incremental = {uid for uid, node in nodes.items() if node["resource_type"] == "model"
                   and node["config"]["materialized"] == "incremental"}
    assert len(incremental) == 12, sorted(incremental)
    for uid in incremental:
        # After the model's own pre-hooks (which may delete rows about to be rebuilt).
        assert "record_test_window(" in nodes[uid]["config"]["pre-hook"][-1]["sql"], uid
    tests = [node for node in nodes.values()
             if node["resource_type"] == "test" and node.get("attached_node") in incremental]
    keyed = {t["attached_node"] for t in tests if t["test_metadata"]["name"] == "primary_key"}
    assert keyed == incremental
    assert [t["name"] for t in tests if t["config"].get("where") != "__changed_rows__"] == []


def test_primary_key_fails_on_a_duplicate_and_on_a_null_key_one_row_each(demo, tmp_path):
    with warehouse.open_warehouse(demo, purpose="test") as conn:
        first, second, third = (row[0] for row in conn.execute(
            "select product_id from marts.dim_products order by product_id limit 3").fetchall())
        conn.execute("update marts.dim_products set product_id = ? where product_id = ?",
                     [first, second])
        conn.execute("update marts.dim_products set product_id = null where product_id = ?",
                     [third])
    try:
        assert _dbt(demo, tmp_path, "test", "--select", "primary_key_dim_products_product_id") \
            == {"primary_key_dim_products_product_id": ("fail", 2)}
    finally:  # a table model: rebuilding it undoes the defects for the other tests
        assert tenant_dbt.run(demo, ["run", "--select", "dim_products"], purpose="test").ok


def test_tests_read_every_row_after_a_full_build_and_the_run_rows_after_an_incremental_one(
        demo, tmp_path, shopify_fixtures):
    tenant = demo
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        assert _windows(conn) == {}  # the demo was built once: a full build
        old_order, old_line = conn.execute(
            "select order_id, min(order_line_id) from marts.fct_order_lines "
            "group by order_id order by order_id limit 1").fetchone()
        watermark, currency, day = conn.execute(
            "select max(_source_load_id), min(currency), max(order_date) "
            "from marts.fct_orders").fetchone()
        variant, product = conn.execute(
            "select variant_id, product_id from marts.dim_variants "
            "order by variant_id limit 1").fetchone()
    # Defects in old rows: an order without currency, a line whose order does not exist.
    _plant(tenant, order_id=old_order, line_id=old_line, orphan_of=-1)

    # After a full build there is no window: both tests read every row and fail on the old ones.
    full = _dbt(tenant, tmp_path / "full", "test", "--select", *PLANTED)
    assert full == {name: ("fail", 1) for name in PLANTED}
    assert "where true) dbt_subquery" in _compiled(tmp_path / "full", NOT_NULL)

    # One new order arrives; the daily build (every model and test, as the pipeline runs it)
    # passes: the old defects are outside the window of this run.
    order = _order(json.loads((shopify_fixtures / "orders.json").read_text())["orders"][0],
                   day.isoformat(), currency, variant, product)
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "orders.json").write_text(json.dumps({"orders": [order]}))
    imported = cleargro("import", "--tenant", tenant, "--from", str(tmp_path / "drop"))
    assert imported.returncode == 0, imported.stderr
    build = tenant_dbt.run(tenant, tenant_dbt.build_args(tenant), purpose="test",
                           target=tmp_path / "incremental")
    assert build.ok, build.output[-3000:]
    statuses = _results(tmp_path / "incremental")
    assert {statuses[name] for name in PLANTED} == {("pass", 0)}
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        windows = _windows(conn)
        # Every incremental model recorded its window; the marts' is the watermark before the
        # run, and it holds exactly the rows the run wrote.
        assert set(windows) == {
            *(f"marts.{m}" for m in ("fct_orders", "fct_order_lines", "fct_daily_sales",
                                     "fct_daily_variant_sales", "fct_ads_campaign_daily",
                                     "fct_ads_keyword_daily", "fct_ads_product_daily",
                                     "fct_ads_search_term_daily", "fct_ga4_item_daily",
                                     "fct_ga4_traffic_daily")),
            "insights.opportunity_history", "insights.int_insights__detection_state"}
        assert windows["marts.fct_orders"] == {"column": "_source_load_id",
                                                "changed_after": watermark}
        assert conn.execute("select order_id from marts.fct_orders where _source_load_id > ?",
                            [watermark]).fetchall() == [(NEW_ORDER,)]
        assert conn.execute("select order_line_id from marts.fct_order_lines "
                            "where _source_load_id > ?", [watermark]).fetchall() == [(NEW_LINE,)]
    window = ('(select * from "wh"."marts".{} '
              f"""where "_source_load_id" > '{watermark}') dbt_subquery""")
    assert window.format('"fct_orders"') in _compiled(tmp_path / "incremental", NOT_NULL)
    relationship = _compiled(tmp_path / "incremental", RELATIONSHIP)
    assert window.format('"fct_order_lines"') in relationship  # the child side: the run's keys...
    assert '"wh"."marts"."fct_orders" where' not in relationship  # ...looked up in every parent

    # The same defects in the rows the run wrote fail the scoped tests, one row each.
    _plant(tenant, order_id=NEW_ORDER, line_id=NEW_LINE, orphan_of=-2)
    scoped = _dbt(tenant, tmp_path / "scoped", "test", "--select", *PLANTED)
    assert scoped == {name: ("fail", 1) for name in PLANTED}
    # test_all_rows reads every row again: the old defects are still there.
    everything = _dbt(tenant, tmp_path / "all", "test", "--select", *PLANTED, "--vars",
                      json.dumps({"tenant": tenant, "test_all_rows": True}))
    assert everything == {name: ("fail", 2) for name in PLANTED}


def _order(template: dict, day: str, currency: str, variant: int, product: int) -> dict:
    order = copy.deepcopy(template)
    stamp = f"{day}T10:00:00+00:00"
    order.update({
        "id": NEW_ORDER, "name": f"#{NEW_ORDER}", "order_number": NEW_ORDER, "customer": None,
        "created_at": stamp, "processed_at": stamp, "updated_at": stamp, "cancelled_at": None,
        "test": False, "currency": currency, "subtotal_price": "10.00",
        "total_line_items_price": "10.00", "total_discounts": "0.00", "total_price": "10.00",
        "total_tax": "0.00", "refunds": [],
        "line_items": [{"id": NEW_LINE, "variant_id": variant, "product_id": product,
                        "sku": "PLANTED", "title": "Planted", "quantity": 1, "price": "10.00",
                        "total_discount": "0.00"}],
    })
    return order


def _plant(tenant: str, *, order_id: int, line_id: int, orphan_of: int) -> None:
    with warehouse.open_warehouse(tenant, purpose="test") as conn:
        conn.execute("update marts.fct_orders set currency = null where order_id = ?", [order_id])
        conn.execute("update marts.fct_order_lines set order_id = ? where order_line_id = ?",
                     [orphan_of, line_id])


def _windows(conn) -> dict[str, dict]:
    return {f"{schema}.{table}": json.loads(comment) for schema, table, comment in conn.execute(
        "select schema_name, table_name, comment from duckdb_tables() "
        "where database_name = 'wh' and comment is not null").fetchall()}


def _dbt(tenant: str, target: Path, *args: str) -> dict[str, tuple[str, int]]:
    """Run dbt (target kept); each selected node's (status, failures)."""
    tenant_dbt.run(tenant, list(args), purpose="test", target=target)
    return _results(target)


def _results(target: Path) -> dict[str, tuple[str, int]]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[2]: (r["status"], r["failures"]) for r in results}


def _compiled(target: Path, name: str) -> str:
    results = json.loads((target / "run_results.json").read_text())["results"]
    (code,) = [r["compiled_code"] for r in results if r["unique_id"].split(".")[2] == name]
    return code
