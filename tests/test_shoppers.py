"""One shopper's data: find, export and erase (Shopify's customers/data_request and
customers/redact).

The tests run on a private copy of the session's demo tenant (conftest `built_demo`): an
erasure rewrites the warehouse and rebuilds its models, so the shared demo stays untouched.
Two erasures rebuild the models (about half a minute each on the small demo): the direct one
(`erased`, by Shopify customer id) and the batch of `process_pending`.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import private_demo

from cleargro_pipeline import ingest, warehouse
from cleargro_pipeline.controls import backups
from cleargro_pipeline.controls import export as ex
from cleargro_pipeline.demo.catalog import customer_ids
from cleargro_pipeline.privacy import request_log, shoppers
from cleargro_pipeline.security import audit, keys, secret_store, verify_at_rest
from cleargro_pipeline.settings import paths
from cleargro_pipeline.sources.contract import TABLES
from cleargro_pipeline.warehouse import ALIAS, open_warehouse

from comparable import comparable

TENANT = "demo"
SHOP = "cleargro-demo.myshopify.com"


@dataclass
class Env:
    data: Path
    out: Path


@dataclass(frozen=True)
class Shopper:
    customer_id: int  # the Shopify id the demo generator gave the shopper
    pseudonym: str
    orders: int


@pytest.fixture(scope="module")
def env(built_demo, tmp_path_factory) -> Env:
    root = tmp_path_factory.mktemp("shoppers")
    out = root / "out"
    out.mkdir()
    with private_demo(built_demo, root) as data:
        yield Env(data, out)


def _q(conn, sql: str, *params):
    return conn.execute(sql, list(params)).fetchall()


@pytest.fixture(scope="module")
def picked(env) -> dict[str, Shopper]:
    """Shoppers of the demo, found from the generator's customer ids (6_200_000_000 + 5 i):
    `erased` and `redacted` are returning shoppers (several orders), `exported` and
    `requested` have orders too."""
    ids = [int(i) for i in customer_ids(range(400))]
    pseudonymise = keys.pseudonymiser(TENANT, "test")
    pseudonyms = pseudonymise(pa.array([str(i) for i in ids], pa.string())).to_pylist()
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        orders = dict(_q(conn, "select customer_pseudonym, count(*) from raw_shop.orders "
                               "where customer_pseudonym in (select unnest(?)) group by 1",
                         pseudonyms))
        customers = {p for (p,) in _q(conn, "select customer_pseudonym from raw_shop.customers")}
    candidates = [Shopper(i, p, orders[p]) for i, p in zip(ids, pseudonyms)
                  if p in orders and p in customers]
    returning = [s for s in candidates if s.orders >= 2]
    once = [s for s in candidates if s.orders == 1]
    assert len(returning) >= 3 and len(once) >= 1, "the demo should have such shoppers"
    return {"erased": returning[0], "redacted": returning[1], "exported": returning[2],
            "requested": once[0]}


# --- where pseudonyms live ------------------------------------------------------------------

def _text_columns(conn) -> list[tuple[str, str, str]]:
    """(schema, table, column) of every text-like column of every base table, from the
    catalog (independently of the module)."""
    return _q(conn, """
        select c.table_schema, c.table_name, c.column_name
        from information_schema.columns c
        join information_schema.tables t using (table_catalog, table_schema, table_name)
        where c.table_catalog = ? and t.table_type = 'BASE TABLE'
          and (c.data_type like 'VARCHAR%' or c.data_type like '%[]' or c.data_type like 'STRUCT%'
               or c.data_type like 'MAP%' or c.data_type in ('JSON', 'BLOB'))
        order by 1, 2, 3""", ALIAS)


def test_pseudonym_columns_cover_every_column_holding_pseudonyms(env):
    """Every pseudonym the warehouse holds (each shopper's and each app user's), searched
    as a 64-hex token inside every text column of every table: it occurs exactly in the
    columns the module lists, and the listed ones are the contract's columns and the dbt
    columns carrying them on."""
    pseudonym_names = {pseudo for t in TABLES for _, pseudo in t.pseudonymised}
    assert pseudonym_names == {"customer_pseudonym", "user_pseudonym"}
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        listed = shoppers.pseudonym_columns(conn)
        assert {"raw_shop.orders", "raw_shop.customers", "raw_app.app_events",
                "marts.fct_orders"} <= set(listed)
        for raw in TABLES:
            for _, pseudo in raw.pseudonymised:
                assert pseudo in listed[f"{raw.dataset}.{raw.name}"]
        known = ("select customer_pseudonym as v from raw_shop.customers union "
                 "select customer_pseudonym from raw_shop.orders union "
                 "select user_pseudonym from raw_app.app_events")
        (total,) = conn.execute(f"select count(*) from ({known})").fetchone()
        assert total > 10_000
        holding = set()
        for schema, table, column in _text_columns(conn):
            (hits,) = conn.execute(
                f'select count(*) from (select unnest(regexp_extract_all('
                f"""cast("{column}" as varchar), '[0-9a-f]{{64}}')) as v """
                f'from "{schema}"."{table}") where v in ({known})'
            ).fetchone()
            if hits:
                holding.add((f"{schema}.{table}", column))
    assert holding == {(t, c) for t, cols in listed.items() for c in cols}


def test_erasure_rebuilds_everything_downstream_of_pseudonym_holders(env):
    assert {"source:shop.orders+", "source:shop.customers+", "source:app.app_events+"} == \
        set(shoppers.rebuild_selection())


def test_find_returns_the_shoppers_rows(env, picked):
    shopper = picked["exported"]
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        found = shoppers.find(conn, shopper.pseudonym)
        assert {n: t.num_rows for n, t in found.items()} == {
            "raw_shop.customers": 1, "raw_shop.orders": shopper.orders,
            "marts.fct_orders": shopper.orders}
        for name, rows in found.items():
            schema, table = name.split(".")
            want = conn.execute(f'select * from "{schema}"."{table}" where customer_pseudonym = ?',
                                [shopper.pseudonym]).to_arrow_table()
            key = [(c, "ascending") for c in want.column_names]
            assert rows.sort_by(key).equals(want.sort_by(key)), name
        assert shoppers.find(conn, "0" * 64) == {}
    with pytest.raises(shoppers.ShopperError, match="64 lowercase hex"):
        shoppers.find(conn, "not-a-pseudonym")


def test_a_shopper_is_named_by_exactly_one_of_id_or_pseudonym(env, picked):
    shopper = picked["erased"]
    assert shoppers.resolve(TENANT, shopper_id=shopper.customer_id) == shopper.pseudonym
    assert shoppers.resolve(TENANT, shopper_id=f"gid://shopify/Customer/{shopper.customer_id}") \
        == shopper.pseudonym
    for kwargs in ({}, {"shopper_id": shopper.customer_id, "pseudonym": shopper.pseudonym}):
        with pytest.raises(shoppers.ShopperError, match="exactly one"):
            shoppers.erase(TENANT, **kwargs)


# --- erasure --------------------------------------------------------------------------------

def _fingerprints(conn) -> dict[str, tuple[int, int]]:
    """Rows and content hash of every base table (doubles compared as `comparable` says: a
    rule's metric_value is rebuilt by the erasure)."""
    columns: dict[tuple[str, str], list[str]] = {}
    for s, t, c, kind in _q(conn, "select table_schema, table_name, column_name, data_type from "
                                  "information_schema.columns where table_catalog = ? "
                                  "order by ordinal_position", ALIAS):
        columns.setdefault((s, t), []).append(comparable(c, kind))
    return {f"{s}.{t}": conn.execute(
                f'select count(*), coalesce(sum(hash({", ".join(columns[(s, t)])})), 0) '
                f'from "{s}"."{t}"').fetchone()
            for s, t in _q(conn, "select table_schema, table_name from "
                                 "information_schema.tables where table_catalog = ? "
                                 "and table_type = 'BASE TABLE'", ALIAS)}


def _shopper_counts(conn) -> dict[str, int]:
    return {
        "customers": _q(conn, "select count(*) from raw_shop.customers")[0][0],
        "ordering_shoppers": _q(conn, "select count(distinct customer_pseudonym) "
                                      "from marts.fct_orders")[0][0],
        "returning_shoppers": _q(conn, "select count(*) from (select customer_pseudonym from "
                                       "marts.fct_orders where customer_pseudonym is not null "
                                       "group by 1 having count(*) > 1)")[0][0],
        "orders": _q(conn, "select count(*) from marts.fct_orders")[0][0],
        "raw_orders": _q(conn, "select count(*) from raw_shop.orders")[0][0],
        "guest_orders": _q(conn, "select count(*) from marts.fct_orders "
                                 "where customer_pseudonym is null")[0][0],
    }


def _new_customers_per_day(conn) -> dict:
    return dict(_q(conn, "select first_day, count(*) from (select customer_pseudonym, "
                         "min(order_date) as first_day from marts.fct_orders where "
                         "customer_pseudonym is not null group by 1) group by 1"))


def _per_shopper(conn) -> dict[str, dict[str, int]]:
    return {name: dict(_q(conn, f"select customer_pseudonym, count(*) from {name} "
                                "where customer_pseudonym is not null group by 1"))
            for name in ("raw_shop.orders", "raw_shop.customers", "marts.fct_orders")}


def _without(conn, name: str, column: str) -> pa.Table:
    schema, table = name.split(".")
    rows = conn.execute(f'select * exclude ("{column}") from "{schema}"."{table}"').to_arrow_table()
    return rows.sort_by([(c, "ascending") for c in rows.column_names])


@dataclass
class Erased:
    shopper: Shopper
    report: shoppers.ErasureReport
    before: dict
    after: dict
    seconds: float
    backup_id: str  # taken just before the erasure


@pytest.fixture(scope="module")
def erased(env, picked) -> Erased:
    shopper = picked["erased"]
    path = paths().warehouse(TENANT)

    def state() -> dict:
        with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
            return {"fingerprints": _fingerprints(conn), "counts": _shopper_counts(conn),
                    "new_per_day": _new_customers_per_day(conn), "per_shopper": _per_shopper(conn),
                    "orders": _without(conn, "raw_shop.orders", "customer_pseudonym"),
                    "fct_orders": _without(conn, "marts.fct_orders", "customer_pseudonym"),
                    "order_ids": {i for (i,) in _q(conn, "select id from raw_shop.orders where "
                                                         "customer_pseudonym = ?", shopper.pseudonym)},
                    "first_day": _q(conn, "select min(order_date) from marts.fct_orders where "
                                          "customer_pseudonym = ?", shopper.pseudonym)[0][0],
                    "inode": path.stat().st_ino,
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    before = state()
    backup = backups.take(TENANT, reason="before-erasure")  # for the restore test at the end
    started = datetime.now(timezone.utc)
    report = shoppers.erase(TENANT, shopper_id=shopper.customer_id)
    seconds = (datetime.now(timezone.utc) - started).total_seconds()
    return Erased(shopper, report, before, state(), seconds, backup.id)


def test_erasure_reports_what_it_did(erased):
    report, shopper = erased.report, erased.shopper
    assert report.tables == {
        "raw_shop.customers": shoppers.TableErasure(deleted=1),
        "raw_shop.orders": shoppers.TableErasure(unlinked=shopper.orders),
        "marts.fct_orders": shoppers.TableErasure(unlinked=shopper.orders)}
    assert report.models_rebuilt > 30
    assert report.warehouse_bytes == paths().warehouse(TENANT).stat().st_size
    assert shopper.pseudonym not in repr(report)
    print(f"erasure took {erased.seconds:.1f} s: {report.seconds}")


def test_no_table_holds_the_pseudonym_afterwards(erased):
    pseudonym = erased.shopper.pseudonym
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        assert shoppers.find(conn, pseudonym) == {}
        columns = _text_columns(conn)
        assert len(columns) > 100
        for schema, table, column in columns:
            (hits,) = conn.execute(f'select count(*) from "{schema}"."{table}" '
                                   f'where contains(cast("{column}" as varchar), ?)',
                                   [pseudonym]).fetchone()
            assert hits == 0, f"{schema}.{table}.{column}"


def test_orders_are_kept_and_unlinked_revenue_unchanged(erased):
    before, after, shopper = erased.before, erased.after, erased.shopper
    assert len(before["order_ids"]) == shopper.orders and after["order_ids"] == set()
    # The orders are all still there, identical but for the pseudonym; so is every figure.
    assert after["orders"].equals(before["orders"])
    assert after["fct_orders"].equals(before["fct_orders"])
    for name in ("marts.fct_daily_sales", "marts.fct_order_lines", "marts.fct_daily_variant_sales",
                 "insights.opportunities", "insights.alert_detections"):
        assert after["fingerprints"][name] == before["fingerprints"][name], name
    b, a = before["counts"], after["counts"]
    assert (a["orders"], a["raw_orders"]) == (b["orders"], b["raw_orders"])
    assert a["guest_orders"] == b["guest_orders"] + shopper.orders
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        unlinked = _q(conn, "select count(*), count(customer_pseudonym) from raw_shop.orders "
                            "where id in (select unnest(?))", sorted(before["order_ids"]))
    assert unlinked == [(shopper.orders, 0)]


def test_shopper_counts_drop_by_exactly_that_shopper(erased):
    b, a = erased.before["counts"], erased.after["counts"]
    assert a["customers"] == b["customers"] - 1
    assert a["ordering_shoppers"] == b["ordering_shoppers"] - 1
    assert a["returning_shoppers"] == b["returning_shoppers"] - 1  # they had several orders
    first_day = erased.before["first_day"]
    expected = dict(erased.before["new_per_day"])
    expected[first_day] -= 1
    assert erased.after["new_per_day"] == {d: n for d, n in expected.items() if n}


def test_every_other_table_is_unchanged(erased):
    """Only the tables that named the shopper changed; anything else (marts, insights,
    snapshots, dlt state) is exactly as before, except columns that count shoppers, which
    may only go down."""
    before, after = erased.before["fingerprints"], erased.after["fingerprints"]
    assert set(before) == set(after)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == set(erased.report.tables)
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        counting = [(s, t, c) for s, t, c, kind in _q(
            conn, "select table_schema, table_name, column_name, data_type from "
                  "information_schema.columns where table_catalog = ?", ALIAS)
            if re.search(r"customer|shopper", c) and not c.endswith("_pseudonym")
            and re.match(r"(BIGINT|INTEGER|HUGEINT|DECIMAL|DOUBLE)", kind)]
    assert counting == []  # none today; when a mart counts shoppers, assert its drop here


def test_other_shoppers_are_untouched(erased):
    pseudonym = erased.shopper.pseudonym
    for name, counts in erased.before["per_shopper"].items():
        assert pseudonym in counts
        expected = {p: n for p, n in counts.items() if p != pseudonym}
        assert erased.after["per_shopper"][name] == expected, name


def test_the_file_was_rewritten_and_is_still_encrypted(erased):
    path = paths().warehouse(TENANT)
    assert erased.after["sha256"] != erased.before["sha256"]
    assert erased.after["inode"] != erased.before["inode"]  # a new file, the old one shredded
    warehouse.check_file(TENANT, path)  # whole and flagged encrypted
    with open(path, "rb") as f:
        assert f.read(warehouse.ENCRYPTED_FLAG_OFFSET + 1)[warehouse.ENCRYPTED_FLAG_OFFSET] == 1
    body = path.read_bytes()
    assert erased.shopper.pseudonym.encode() not in body
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith("warehouse.duckdb.")]
    assert not (paths().tenant_work(TENANT) / "dbt").exists() or \
        not list((paths().tenant_work(TENANT) / "dbt").iterdir())  # dbt's target/ removed


def test_the_audit_log_records_counts_never_the_shopper(erased):
    text = paths().audit_log.read_text()
    shopper = erased.shopper
    assert shopper.pseudonym not in text and str(shopper.customer_id) not in text
    entry = [e for e in audit.entries() if e["action"] == "shopper_erased"][-1]
    assert entry["tenant"] == TENANT and entry["purpose"] == "shopper_erasure"
    assert entry["detail"]["tables"]["raw_shop.customers"] == {"deleted": 1, "unlinked": 0}
    assert entry["detail"]["rows_unlinked"] == 2 * shopper.orders
    audit.verify()


def test_nothing_on_disk_names_the_erased_shopper_but_the_request_log(env, erased):
    """The at-rest scanner finds the pseudonym under data/ only in the privacy request log,
    the record that the erasure was asked for and done (no dbt or spill leftovers, no
    plaintext DuckDB file)."""
    request = request_log.get(erased.report.request_id)
    assert (request.topic, request.status, request.source) == \
        (request_log.CUSTOMERS_REDACT, "done", "cli")
    assert request.customer_pseudonym == erased.shopper.pseudonym
    found = verify_at_rest.scan([env.data], [erased.shopper.pseudonym])
    assert {f.path for f in found} == {request_log.log_file()}


# --- export ---------------------------------------------------------------------------------

def test_export_holds_exactly_what_find_returns(env, picked, erased):
    shopper = picked["exported"]
    made = shoppers.export(TENANT, shopper_id=shopper.customer_id, out=env.out / "shopper.cgx")
    path, key_text = made
    assert key_text not in repr(made) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes()[:8] == ex.MAGIC
    files = ex.decrypt(path, key_text)
    manifest = ex.manifest_of(files)
    assert manifest["subject"] == "shopper" and manifest["tenant"] == TENANT
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        found = shoppers.find(conn, shopper.pseudonym)
        order_ids = sorted(found["raw_shop.orders"]["id"].to_pylist())
        # What they bought: every table keyed by order_id, worked out independently.
        linked = {}
        for schema, table in _q(conn, "select c.table_schema, c.table_name from "
                                      "information_schema.columns c join information_schema.tables t "
                                      "using (table_catalog, table_schema, table_name) where "
                                      "c.table_catalog = ? and c.column_name = 'order_id' and "
                                      "t.table_type = 'BASE TABLE'", ALIAS):
            if f"{schema}.{table}" not in found:
                rows = conn.execute(f'select * from "{schema}"."{table}" where order_id in '
                                    "(select unnest(?))", [order_ids]).to_arrow_table()
                if rows.num_rows:
                    linked[f"{schema}.{table}"] = rows
    assert {"raw_shop.order_line_items", "marts.fct_order_lines"} <= set(linked)
    listed = {t["table"]: t for t in manifest["tables"]}
    assert set(found) == {"raw_shop.customers", "raw_shop.orders", "marts.fct_orders"}
    assert set(listed) == set(found) | set(linked)
    for name, rows in {**found, **linked}.items():
        got = pq.read_table(io.BytesIO(files[listed[name]["file"]]))
        assert listed[name]["rows"] == got.num_rows == rows.num_rows
        assert [c["name"] for c in listed[name]["columns"]] == got.column_names == rows.column_names
        key = [(c, "ascending") for c in rows.column_names]
        assert got.sort_by(key).equals(rows.sort_by(key)), name

    # Registered for export.py's 7-day expiry; the key is written nowhere.
    entry = json.loads(next(ex.registry_dir(TENANT).glob("*.json")).read_text())
    assert entry["path"] == str(path) and entry["subject"] == "shopper"
    for file in env.data.rglob("*"):
        if file.is_file():
            assert key_text.encode() not in file.read_bytes(), file
    logged = [e for e in audit.entries() if e["action"] == "shopper_exported"][-1]["detail"]
    assert logged["rows"] == sum(t.num_rows for t in {**found, **linked}.values())
    assert shopper.pseudonym not in paths().audit_log.read_text()
    later = datetime.now(timezone.utc) + timedelta(days=8)
    assert ex.purge_expired(now=later) == [entry["export_id"]]
    assert not path.exists()


# --- pending privacy requests, end to end ---------------------------------------------------

def test_pending_requests_are_processed_end_to_end(env, picked, erased):
    redacted, requested = picked["redacted"], picked["requested"]
    redact = request_log.record(
        request_log.CUSTOMERS_REDACT, TENANT,
        {"shop_domain": SHOP, "customer_id": redacted.customer_id, "orders_to_redact": [1, 2]},
        webhook_id="wh-redact-1")
    unknown = request_log.record(  # a shopper this tenant never saw: nothing to erase
        request_log.CUSTOMERS_REDACT, TENANT, {"shop_domain": SHOP, "customer_id": 17},
        webhook_id="wh-redact-2")
    data_request = request_log.record(
        request_log.CUSTOMERS_DATA_REQUEST, TENANT,
        {"shop_domain": SHOP, "customer_id": requested.customer_id, "data_request_id": 9001},
        webhook_id="wh-data-1")
    ours = {redact.request_id, unknown.request_id, data_request.request_id}
    assert {r.request_id for r in request_log.pending()} == ours
    assert {r.request_id for r in shoppers.due_requests(TENANT)} == ours

    erasures_before = len([e for e in audit.entries() if e["action"] == "shopper_erased"])
    done = shoppers.process_pending()
    assert set(done) == ours and len(done) == 3
    assert request_log.pending() == []
    assert {request_log.get(i).status for i in ours} == {"done"}
    assert shoppers.process_pending() == [] and shoppers.due_requests() == []  # nothing twice

    # The two redactions were erased in one batch: one rebuild, one rewrite.
    erasures = [e for e in audit.entries() if e["action"] == "shopper_erased"][erasures_before:]
    assert {e["detail"]["request_id"] for e in erasures} == {redact.request_id, unknown.request_id}
    assert {e["detail"]["batch"] for e in erasures} == {2}
    by_request = {e["detail"]["request_id"]: e["detail"] for e in erasures}
    assert by_request[unknown.request_id]["tables"] == {}
    assert by_request[redact.request_id]["rows_deleted"] == 1
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        assert shoppers.find(conn, redacted.pseudonym) == {}
        assert shoppers.holding(conn, [redacted.pseudonym, erased.shopper.pseudonym]) == {}
        assert set(shoppers.find(conn, requested.pseudonym)) == \
            {"raw_shop.customers", "raw_shop.orders", "marts.fct_orders"}
    assert request_log.redacted_pseudonyms(TENANT) >= {redacted.pseudonym}

    # The data request's archive waits in data/privacy/exports with its key sealed.
    archive = paths().data / "privacy" / "exports" / f"{data_request.request_id}.cgx"
    assert archive.exists() and stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert f"privacy_export.{data_request.request_id}" in secret_store.names(TENANT)
    path, key_text = shoppers.retrieve_export(TENANT, data_request.request_id)
    assert path == archive
    files = ex.decrypt(path, key_text)
    manifest = ex.manifest_of(files)
    assert manifest["request_id"] == data_request.request_id
    tables = {t["table"]: t for t in manifest["tables"]}
    assert {"raw_shop.customers", "raw_shop.orders", "marts.fct_orders", "privacy.requests",
            "raw_shop.order_line_items", "marts.fct_order_lines"} <= set(tables)
    assert tables["raw_shop.orders"]["rows"] == requested.orders
    log = pq.read_table(io.BytesIO(files[tables["privacy.requests"]["file"]])).to_pylist()
    assert [(r["request_id"], r["data_request_id"]) for r in log] == \
        [(data_request.request_id, 9001)]
    # The key is shown once: retrieved, it is gone from the store.
    assert f"privacy_export.{data_request.request_id}" not in secret_store.names(TENANT)
    with pytest.raises(shoppers.ShopperError, match="already retrieved"):
        shoppers.retrieve_export(TENANT, data_request.request_id)

    text = paths().audit_log.read_text()
    for shopper in picked.values():
        assert shopper.pseudonym not in text and str(shopper.customer_id) not in text
    audit.verify()

    # After 30 days the archive goes.
    assert shoppers.purge_expired_exports(now=datetime.now(timezone.utc) + timedelta(days=29)) == []
    assert shoppers.purge_expired_exports(now=datetime.now(timezone.utc) + timedelta(days=31)) == \
        [data_request.request_id]
    assert not archive.exists() and not list(shoppers.privacy_exports_dir().iterdir())


# --- erased shoppers stay out ---------------------------------------------------------------

def _drop_with_customers(folder: Path, fixtures: Path, customer_ids: list[int]) -> Path:
    """A file drop of Shopify's customer and order bodies (the shared fixtures), one customer
    and one order for each id."""
    customer = json.loads((fixtures / "customer.json").read_text())["customer"]
    order = json.loads((fixtures / "orders.json").read_text())["orders"][0]
    folder.mkdir()
    customers, orders = [], []
    for n, customer_id in enumerate(customer_ids):
        customers.append({**customer, "id": customer_id})
        orders.append({**order, "id": 9_000_000_000 + n, "customer": {**order["customer"],
                                                                      "id": customer_id}})
    (folder / "customers.json").write_text(json.dumps({"customers": customers}))
    (folder / "orders.json").write_text(json.dumps({"orders": orders}))
    return folder


def test_a_reimport_does_not_bring_erased_shoppers_back(env, picked, erased, shopify_fixtures):
    """A merchant re-sends customers and orders that include shoppers already erased (by the
    CLI, by a processed webhook) and one whose redaction is still pending: none of them is
    loaded, their orders are loaded unlinked, and an unrelated shopper loads as usual."""
    pending = request_log.record(request_log.CUSTOMERS_REDACT, TENANT,
                                      {"shop_domain": SHOP, "customer_id": 6_999_000_001},
                                      webhook_id="wh-redact-pending")
    assert pending.status == "pending"
    gone = [erased.shopper, picked["redacted"]]
    ids = [s.customer_id for s in gone] + [6_999_000_001, 6_999_000_002]
    gone_pseudonyms = [s.pseudonym for s in gone] + [pending.customer_pseudonym]
    kept = shoppers.resolve(TENANT, shopper_id=6_999_000_002)

    reports = ingest.load(TENANT, ingest.FileDropPlan(
        _drop_with_customers(env.out / "drop", shopify_fixtures, ids)))
    loaded = {t: n for r in reports for t, n in r.rows.items()}
    assert (loaded["customers"], loaded["orders"]) == (1, 4)
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        assert shoppers.holding(conn, gone_pseudonyms) == {}
        assert _q(conn, "select id, customer_pseudonym from raw_shop.orders where id between "
                        "9000000000 and 9000000099 order by id") == \
            [(9_000_000_000, None), (9_000_000_001, None), (9_000_000_002, None),
             (9_000_000_003, kept)]
        assert _q(conn, "select count(*) from raw_shop.customers where customer_pseudonym = ?",
                  kept) == [(1,)]
    assert verify_at_rest.scan([paths().tenant_work(TENANT)], gone_pseudonyms) == []


def test_restoring_a_backup_from_before_the_erasure_erases_again(env, picked, erased):
    """The backup taken just before the first erasure still holds that shopper (and the
    webhook-redacted one): restored, both are erased again at once, and the other shoppers
    of the backup are back as they were."""
    report = shoppers.restore_backup(TENANT, erased.backup_id)
    assert report.backup_id == erased.backup_id
    gone = [erased.shopper.pseudonym, picked["redacted"].pseudonym]
    with open_warehouse(TENANT, purpose="test", read_only=True) as conn:
        assert shoppers.holding(conn, gone) == {}
        assert _q(conn, "select count(*) from raw_shop.customers")[0][0] == \
            erased.before["counts"]["customers"] - 2
        assert _q(conn, "select count(*) from raw_shop.orders")[0][0] == \
            erased.before["counts"]["raw_orders"]  # kept, unlinked; the re-import is undone
        for name in ("exported", "requested"):
            assert set(shoppers.find(conn, picked[name].pseudonym)) == \
                {"raw_shop.customers", "raw_shop.orders", "marts.fct_orders"}
    # One batch for every redaction on record: the two above, the pending one and the
    # shopper this tenant never saw (test_pending_requests...).
    asked = len(request_log.redacted_pseudonyms(TENANT))
    assert asked == 4
    assert [e["detail"]["batch"] for e in audit.entries()
            if e["action"] == "shopper_erased"][-asked:] == [asked] * asked
