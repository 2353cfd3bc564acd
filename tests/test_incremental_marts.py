"""Incremental marts equal a full refresh after a later load changes history: a refund on
an old order, a cancellation, a new order on a new day, a unit cost change (real file drops,
real dbt runs); an item reloaded with an unchanged cost rebuilds nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from test_cli import cleargro

from cleargro_pipeline import bootstrap, warehouse
from cleargro_pipeline.security import keys, verify_at_rest
from cleargro_pipeline.warehouse import dbt as tenant_dbt

INCREMENTAL = ("fct_orders", "fct_order_lines", "fct_daily_sales", "fct_daily_variant_sales")


def _order(template, order_id, day, updated, lines, refunds=(), cancelled=None):
    order = copy.deepcopy(template)
    stamp = f"2024-03-{day:02d}T10:00:00+00:00"
    subtotal = sum(q * p for _, _, q, p in lines)
    order.update({
        "id": order_id, "name": f"#{order_id}", "created_at": stamp, "processed_at": stamp,
        "updated_at": f"2024-03-{updated:02d}T12:00:00+00:00", "cancelled_at": cancelled,
        "subtotal_price": f"{subtotal:.2f}", "total_line_items_price": f"{subtotal:.2f}",
        "total_discounts": "0.00", "total_price": f"{subtotal:.2f}", "total_tax": "0.00",
        "line_items": [{"id": line_id, "variant_id": variant, "product_id": 1, "sku": f"SKU-{variant}",
                        "title": "Mug", "quantity": qty, "price": f"{price:.2f}",
                        "total_discount": "0.00"} for line_id, variant, qty, price in lines],
        "refunds": [{"id": rid, "created_at": f"2024-03-{updated:02d}T12:00:00+00:00",
                     "refund_line_items": [{"id": rid * 10, "line_item_id": line_id,
                                            "quantity": qty, "subtotal": amount}]}
                    for rid, line_id, qty, amount in refunds],
    })
    return order


def _drop(folder: Path, orders, costs: dict[int, str] | None = None) -> Path:
    """Orders, plus (with `costs`: variant -> unit cost) the catalogue of variants 70 and 71
    and their inventory items."""
    folder.mkdir()
    (folder / "orders.json").write_text(json.dumps({"orders": orders}))
    if costs:
        stamp = "2024-03-01T08:00:00+00:00"
        variants = [{"id": v, "product_id": 1, "sku": f"SKU-{v}", "price": "10.00",
                     "inventory_item_id": v * 10, "created_at": stamp, "updated_at": stamp}
                    for v in costs]
        (folder / "products.json").write_text(json.dumps({"products": [
            {"id": 1, "title": "Mug", "created_at": stamp, "updated_at": stamp, "variants": variants}]}))
        (folder / "inventory_items.json").write_text(json.dumps({"inventory_items": [
            {"id": v * 10, "sku": f"SKU-{v}", "cost": cost, "tracked": True, "created_at": stamp,
             "updated_at": stamp} for v, cost in costs.items()]}))
    return folder


def _marts(tenant):
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        return {name: sorted(map(str, conn.execute(f"select * exclude (_source_load_id) from marts.{name}").fetchall()))
                for name in INCREMENTAL}


def _line_load(tenant, line_id) -> str:
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        return conn.execute("select _source_load_id from marts.fct_order_lines where order_line_id = ?",
                            [line_id]).fetchone()[0]


def _full_refresh(tenant, target: Path):
    run = tenant_dbt.run(tenant, ["build", "--full-refresh"], purpose="test", target=target)
    assert run.returncode == 0, run.output[-3000:]


def test_incremental_run_equals_full_refresh(data_dir, tmp_path, shopify_fixtures):
    template = json.loads((shopify_fixtures / "orders.json").read_text())["orders"][0]
    bootstrap.init()
    assert cleargro("tenants", "add", "acme").returncode == 0
    first = [_order(template, 1, 1, 1, [(11, 70, 2, 10.0)]),
             _order(template, 2, 1, 1, [(21, 70, 1, 10.0), (22, 71, 3, 4.0)]),
             _order(template, 3, 2, 2, [(31, 71, 1, 4.0)]),
             _order(template, 5, 2, 2, [(51, 71, 2, 4.0)])]  # untouched later
    d1 = _drop(tmp_path / "d1", first, costs={70: "6.00", 71: "1.50"})
    assert cleargro("import", "--tenant", "acme", "--from", str(d1)).returncode == 0
    assert cleargro("run", "--tenant", "acme").returncode == 0

    later = [_order(template, 2, 1, 5, [(21, 70, 1, 10.0), (22, 71, 3, 4.0)], refunds=[(7, 22, 2, 8.0)]),
             _order(template, 3, 2, 5, [(31, 71, 1, 4.0)], cancelled="2024-03-05T12:00:00+00:00"),
             _order(template, 4, 5, 5, [(41, 70, 5, 10.0)])]
    untouched_line = _line_load("acme", 51)
    # Variant 70's cost changes (every line of it is re-costed, order 1 included); 71's
    # item is reloaded with its old cost.
    d2 = _drop(tmp_path / "d2", later, costs={70: "7.00", 71: "1.50"})
    assert cleargro("import", "--tenant", "acme", "--from", str(d2)).returncode == 0
    run = cleargro("run", "--tenant", "acme")
    assert run.returncode == 0, run.stdout[-2000:]
    incremental = _marts("acme")
    assert _line_load("acme", 51) == untouched_line
    with warehouse.open_warehouse("acme", purpose="test", read_only=True) as conn:
        assert conn.execute("select unit_cost::double from marts.fct_order_lines "
                            "where order_line_id = 11").fetchone() == (7.0,)

    with warehouse.open_warehouse("acme", purpose="test", read_only=True) as conn:
        day1 = conn.execute("select net_revenue, refunds from marts.fct_daily_sales "
                            "where date_day = '2024-03-01'").fetchone()
        assert [float(v) for v in day1] == [34.0, 8.0]  # 20 + 22 - 8 refunded; the refund itself
        assert conn.execute("select count(*) from marts.fct_orders").fetchone()[0] == 5

    _full_refresh("acme", tmp_path / "dbt-target")
    assert _marts("acme") == incremental

    # dbt's target/ and log of that run (kept here, unlike the pipeline's) hold SQL and
    # results, but neither the data key nor any key-shaped value of it.
    key = keys.unwrap_tenant_key("acme", "data", "test").hex()
    assert (tmp_path / "dbt-target" / "dbt.log").stat().st_size > 0
    assert verify_at_rest.scan([tmp_path / "dbt-target"], [key]) == []
