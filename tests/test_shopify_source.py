"""The live Shopify source end to end against the local fake Shopify (tests/fake_shopify.py:
a real HTTP server executing the connector's documents on Shopify's own schema, serving the
demo shop): connected by the CLI, synced by the tenant's Dagster job into its encrypted
warehouse, first by bulk operations, then by pages."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import signal
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import dagster as dg
import pytest
from click.testing import CliRunner

import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline import bootstrap, ingest, tenants, warehouse
from cleargro_pipeline.alerts import platform
from cleargro_pipeline.cli import cli
from cleargro_pipeline.definitions import loaded_defs
from cleargro_pipeline.defs.ingestion import load_raw
from cleargro_pipeline.orchestration.partitions import dagster_instance, sync_tenant_partitions
from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.errors import CredentialsRejected
from cleargro_pipeline.runner import materialize_tenant
from cleargro_pipeline.security import audit, keys, secret_store, verify_at_rest
from cleargro_pipeline.settings import paths
from cleargro_pipeline.sources import contract
from cleargro_pipeline.sources.shopify import bulk, columns
from cleargro_pipeline.sources.shopify.client import ShopifyClient, ShopifyError
from cleargro_pipeline.sources.shopify.documents import BY_TABLE, ORDERS
from cleargro_pipeline.sources.shopify.source import ShopifyProvider

from comparable import comparable
from fake_shopify import FakeShopify

SHOP = "cleargro-demo.myshopify.com"
TOKEN = "shpat_" + "5" * 32
END = date(2026, 11, 27)
DAY_BEFORE_END = datetime(END.year, END.month, END.day, tzinfo=timezone.utc)  # the first sync's "now"
SERVED = "2027-01"
# Per tenant and random: the only columns of the marts a tenant's own keys or name decide.
TENANT_BOUND = ("pseudonym", "opportunity_id", "_load_id", "_dlt")


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return DemoShop(size="small", seed=7, end_date=END, incidents=True, tenant="live")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, shop: DemoShop) -> Iterator[dict]:
    """Two tenants built once, synced as of the day before the shop's last day: `generated`
    fed by the demo generator, `live` whose shop is synced from the fake Shopify serving the
    same shop (by bulk operations, since it is the first sync)."""
    data = tmp_path_factory.mktemp("shopify_live") / "data"
    env = {"CLEARGRO_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home"),
           keys.MASTER_KEY_ENV: base64.b64encode(os.urandom(32)).decode(),
           "CLEARGRO_PRINCIPAL": "pytest"}
    # Shopify answers with a newer version than the pinned one (it fell forward): the sync
    # goes ahead, and the version alert says so.
    with (pytest.MonkeyPatch.context() as patch,
          FakeShopify(shop, token=TOKEN, served_version=SERVED) as fake):
        for name, value in env.items():
            patch.setenv(name, value)
        bootstrap.init()
        fake.set_cutoff(DAY_BEFORE_END)
        # A live shop has no price or stock history: the generated tenant goes without too.
        demo = {"kind": "demo", "size": "small", "seed": 7, "history": False, "hold_back_days": 1}
        tenants.add("generated", {s: dict(demo) for s in tenants.SOURCE_NAMES})
        tenants.add("live", {s: dict(demo) for s in tenants.SOURCE_NAMES if s != "shop"})
        _cli("tenants", "configure", "live", "--endpoint", f"shop={fake.url}")
        _cli("connect", "shopify", "--tenant", "live", "--shop", SHOP, "--access-token-stdin",
             input=TOKEN + "\n")
        # The demo's last day is 2026-11-27, whatever today is: the next day's cursor is
        # "recent" for the connector, so it reads pages rather than a bulk operation.
        config = tenants.get("live").sources["shop"]
        tenants.configure_source("live", "shop", {**config, "bulk_after_days": 3650})
        materialize_tenant("generated")
        materialize_tenant("live")
        yield {"fake": fake, "data": data, "env": env}
    audit.verify(data / "audit" / "audit.log")


def _cli(*args: str, input: str | None = None, code: int = 0) -> str:
    """The command's output, and its error's message when it is expected to fail (`main`
    prints that line; the runner calls the group itself)."""
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=code != 0)
    assert result.exit_code == code, result.output
    return result.output + (str(result.exception) if code and result.exception else "")


def _tables(conn, schema: str) -> list[str]:
    return [t for (t,) in conn.execute(
        "select table_name from duckdb_tables() where database_name = ? and schema_name = ? "
        "order by 1", [warehouse.ALIAS, schema]).fetchall()]


def _content(tenant: str, schemas: tuple[str, ...]) -> dict[str, list[tuple]]:
    """Every row of every table in `schemas` (dlt's own tables aside), without the
    tenant-bound columns, times to the second (Shopify's DateTime has no fraction; the
    generator's times do), sorted."""
    out = {}
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        for schema in schemas:
            for table in [t for t in _tables(conn, schema) if not t.startswith("_dlt")]:
                columns = [(c, t) for c, t in conn.execute(
                    "select column_name, data_type from duckdb_columns() where database_name = ? "
                    "and schema_name = ? and table_name = ? order by column_index",
                    [warehouse.ALIAS, schema, table]).fetchall()
                           if not any(mark in c for mark in TENANT_BOUND)]
                listed = ", ".join(f'date_trunc(\'second\', "{c}")' if t.startswith("TIMESTAMP")
                                   else comparable(c, t) for c, t in columns)
                rows = conn.execute(f'select {listed} from {warehouse.ALIAS}."{schema}"."{table}" '
                                    f"order by all").fetchall()
                out[f"{schema}.{table}"] = rows
    return out


def test_a_live_shop_builds_the_same_marts_and_opportunities_as_the_generator(live):
    generated = _content("generated", ("raw_shop", "marts", "insights"))
    synced = _content("live", ("raw_shop", "marts", "insights"))
    assert set(synced) == set(generated)
    assert sum(len(rows) for rows in synced.values()) > 10_000
    assert synced["insights.opportunities"], "the demo plants opportunities"
    differ = {table: (sorted(set(generated[table]) - set(synced[table]))[:1],
                      sorted(set(synced[table]) - set(generated[table]))[:1])
              for table in sorted(generated) if synced[table] != generated[table]}
    assert not differ, f"differ (a row only generated, a row only synced): {str(differ)[:3000]}"


def test_the_next_day_arrives_by_pages_with_the_same_result_and_no_duplicates(live):
    fake = live["fake"]
    runs_before = _bulk_runs(fake)
    fake.set_cutoff(None)  # the shop's last day happens
    for system in tenants.SOURCE_NAMES:
        config = {k: v for k, v in tenants.get("generated").sources[system].items()
                  if k != "hold_back_days"}
        tenants.configure_source("generated", system, config)
        if system != "shop":
            tenants.configure_source("live", system, config)
    materialize_tenant("generated")
    run = materialize_tenant("live")
    assert _bulk_runs(fake) == runs_before, "a recent cursor is read by pages"
    paged = [body for _, body in fake.requests if "updated_at:>=" in
             str(body.get("variables", {}).get("query", ""))]
    assert paged, "the increments are filtered on updated_at"
    generated = _content("generated", ("raw_shop", "marts", "insights"))
    synced = _content("live", ("raw_shop", "marts", "insights"))
    assert synced == generated
    with warehouse.open_warehouse("live", purpose="test", read_only=True) as conn:
        for table, keys_ in (("orders", "id"), ("order_line_items", "id"), ("products", "id"),
                             ("inventory_levels", "inventory_item_id, location_id")):
            rows, distinct = conn.execute(
                f"select count(*), count(distinct ({keys_})) from {warehouse.ALIAS}.raw_shop.{table}"
            ).fetchone()
            assert rows == distinct, f"{table} has duplicate keys"
        last = conn.execute(f"select max(created_at) from {warehouse.ALIAS}.raw_shop.orders").fetchone()[0]
    assert last >= DAY_BEFORE_END, "the new day's orders arrived"
    with dg.DagsterInstance.get() as instance:
        (record,) = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(["raw_shop", "orders"]), asset_partitions=["live"]),
            limit=1).records
    assert record.run_id == run.run_id
    metadata = record.asset_materialization.metadata
    assert metadata["read_orders"].value == "pages"
    assert metadata["api_version"].value == "2026-10"
    assert metadata["api_version_served"].value == SERVED


def test_the_version_shopify_fell_forward_to_raises_the_version_alert(live):
    with dg.DagsterInstance.get() as instance:
        (alert,) = platform.api_version_drift(instance, "live")
        assert platform.api_version_drift(instance, "generated") == []
    assert (alert.alert_type, alert.entity_id) == ("source_api_version", "shop")
    assert SERVED in alert.message and "2026-10" in alert.message


def _bulk_runs(fake: FakeShopify) -> int:
    return sum("bulkOperationRunQuery" in body.get("query", "") for _, body in fake.requests)


def test_the_first_sync_ran_bulk_operations_and_selected_no_shopper_identity(live):
    documents = [body.get("query", "") for path, body in live["fake"].requests
                 if path.endswith("/graphql.json")]
    assert _bulk_runs(live["fake"]) == 6, "one bulk operation per document on the first sync"
    for document in documents:
        for personal in ("email", "phone", "firstName", "lastName", "clientIp", "Address"):
            assert personal not in document


def test_tenants_show_says_where_the_shops_order_history_starts(live, shop):
    orders = pa.concat_tables(shop.iter_table("raw_shop", "orders"))
    first = pc.min(orders.column("created_at")).as_py().date().isoformat()
    shown = json.loads(_cli("tenants", "show", "live"))
    assert shown["sources"]["shop"]["orders_history_from"] == first


def test_without_read_all_orders_the_sync_records_the_60_days_it_could_read(shop, data_dir):
    now = DAY_BEFORE_END + timedelta(days=1)
    tenants.add("acme")
    with FakeShopify(shop, token=TOKEN, read_all_orders=False, now=now) as fake:
        _cli("tenants", "configure", "acme", "--endpoint", f"shop={fake.url}")
        _cli("connect", "shopify", "--tenant", "acme", "--shop", SHOP, "--access-token-stdin",
             input=TOKEN + "\n")
        plan = {"shop": ingest.ShopifyPlan(tenant="acme", shop=SHOP, endpoint=fake.url)}
        (report,) = ingest.load("acme", plan, ("shop",))
    first = date.fromisoformat(report.notices["orders_history_from"])
    assert now.date() - timedelta(days=61) <= first <= now.date() - timedelta(days=59)
    orders = pa.concat_tables(shop.iter_table("raw_shop", "orders"))
    recent = pc.sum(pc.greater_equal(orders.column("created_at"),
                                     pa.scalar(now - timedelta(days=60), orders.column("created_at").type))).as_py()
    assert report.rows["orders"] == recent < orders.num_rows


def test_the_token_is_sealed_and_never_on_disk_in_plaintext(live):
    data: Path = live["data"]
    for path in data.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"token in {path}"


def _lines(*lines: dict) -> pa.Table:
    return pa.Table.from_pylist(list(lines), schema=columns.LINES["orders"])


def test_a_bulk_result_with_children_before_parents_is_linked_by_parent_id():
    order = "gid://shopify/Order/7"
    converter = columns.Converter(ORDERS)
    first = dict(converter.convert(_lines(
        {"id": "gid://shopify/LineItem/71", "quantity": 2, "__parentId": order,
         "originalUnitPriceSet": {"shopMoney": {"amount": "9.50"}}},
        {"id": "gid://shopify/RefundLineItem/91", "quantity": 1,
         "__parentId": "gid://shopify/Refund/9", "lineItem": {"id": "gid://shopify/LineItem/71"},
         "subtotalSet": {"shopMoney": {"amount": "9.50"}}})))
    assert first == {}, "children wait for their parent"
    tables = dict(converter.convert(_lines(
        {"id": order, "name": "#1007", "updatedAt": "2026-11-20T10:00:00Z",
         "subtotalPriceSet": {"shopMoney": {"amount": "19.00"}},
         "totalDiscountsSet": {"shopMoney": {"amount": "1.00"}},
         "refunds": [{"id": "gid://shopify/Refund/9", "createdAt": "2026-11-21T09:00:00Z"}]})))
    assert converter.finish() == 0
    (order_row,) = tables["orders"].to_pylist()
    assert order_row["total_line_items_price"] == Decimal("20.00")
    (line,) = tables["order_line_items"].to_pylist()
    assert (line["id"], line["order_id"], line["quantity"]) == (71, 7, 2)
    assert line["order_updated_at"] == datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
    (refund,) = tables["order_refund_line_items"].to_pylist()
    assert (refund["refund_id"], refund["order_id"], refund["line_item_id"]) == (9, 7, 71)
    assert refund["created_at"] == datetime(2026, 11, 21, 9, tzinfo=timezone.utc)


def test_a_child_whose_parent_never_comes_is_left_over_for_the_reader_to_refuse():
    lines = _lines({"id": "gid://shopify/LineItem/71", "quantity": 2,
                    "__parentId": "gid://shopify/Order/7"})
    converter = columns.Converter(ORDERS)
    assert list(converter.convert(lines)) == []
    assert converter.finish() == 1, "the read ends with a child whose parent never came"


def test_a_value_that_is_not_a_gid_is_named_not_quoted():
    with pytest.raises(columns.ShapeError, match="GID"):
        columns.gid(pa.array(["gid://shopify/Order/7", "7"]))


# --- the client and the provider against the fake, without a warehouse ---

@pytest.fixture(scope="module")
def fake(shop: DemoShop) -> Iterator[FakeShopify]:
    with FakeShopify(shop, token=TOKEN) as server:
        yield server


def _client(fake: FakeShopify, **kwargs) -> ShopifyClient:
    return ShopifyClient(SHOP, lambda: TOKEN, endpoint=fake.url, backoff_factor=0.05, **kwargs)


def _read(provider: ShopifyProvider, *tables: str) -> dict[str, pa.Table]:
    """Pull tables as dlt's round-robin extract would, one chunk of each in turn."""
    streams = {t: iter(provider(contract.table(contract.SHOP, t))) for t in tables}
    chunks: dict[str, list[pa.Table]] = {t: [] for t in tables}
    while streams:
        for table, stream in list(streams.items()):
            chunk = next(stream, None)
            if chunk is None:
                del streams[table]
            else:
                chunks[table].append(chunk)
    return {t: pa.concat_tables(c) if c else None for t, c in chunks.items()}


def test_throttled_429_5xx_and_dropped_connections_are_retried(fake):
    client = _client(fake)
    fake.fail_next("throttled", "http429", "http503", "drop", "http500")
    data = client.query("query { products(first: 2) { edges { node { id } } } }", name="probe")
    assert len(data["products"]["edges"]) == 2
    assert client.bucket.available is not None, "the cost bucket is tracked from the answer"


def test_throttling_that_does_not_end_is_an_error_after_bounded_attempts(fake):
    client = _client(fake, max_attempts=2)
    fake.fail_next("throttled", "throttled", "throttled")
    with pytest.raises(ShopifyError, match="THROTTLED"):
        client.query("query { products(first: 1) { edges { node { id } } } }", name="probe")
    fake.fail_next()  # nothing left queued for the next test


def test_a_refused_token_is_credentials_rejected_and_never_quoted(fake):
    client = ShopifyClient(SHOP, lambda: "shpat_wrong", endpoint=fake.url, backoff_factor=0.05)
    with pytest.raises(CredentialsRejected, match="HTTP 401") as refused:
        client.query("query { products(first: 1) { edges { node { id } } } }", name="probe")
    assert "shpat_wrong" not in str(refused.value)


def test_connect_refuses_a_bad_token_and_stores_nothing(fake, data_dir):
    tenants.add("acme")
    _cli("tenants", "configure", "acme", "--endpoint", f"shop={fake.url}")
    output = _cli("connect", "shopify", "--tenant", "acme", "--shop", SHOP,
                  "--access-token-stdin", input="shpat_wrong\n", code=1)
    assert "HTTP 401" in output and "shpat_wrong" not in output
    assert tenants.get("acme").sources["shop"].get("kind") is None
    assert "source.shop.access_token" not in secret_store.names("acme")


def _sync_shop(tenant: str) -> dg.ExecuteInProcessResult:
    """The tenant's shop load alone, as a run of its Dagster job (no dbt)."""
    job = loaded_defs().resolve_job_def("tenant_refresh")
    return job.execute_in_process(
        instance=dagster_instance(), partition_key=tenant, raise_on_error=False,
        asset_selection=[k for k in load_raw.keys if k.path[0] == "raw_shop"])


def test_refused_credentials_stop_the_sync_until_the_shop_is_reconnected(fake, data_dir):
    bootstrap.init()
    tenants.add("acme")
    _cli("tenants", "configure", "acme", "--endpoint", f"shop={fake.url}")
    _cli("connect", "shopify", "--tenant", "acme", "--shop", SHOP, "--access-token-stdin",
         input=TOKEN + "\n")
    sync_tenant_partitions(dagster_instance())
    fake.fail_next("unauthorized")  # the merchant revoked the token
    assert not _sync_shop("acme").success
    assert set(tenants.rejected_sources(tenants.get("acme"))) == {"shop"}
    (alert,) = platform.rejected_credentials("acme")
    assert (alert.alert_type, alert.entity_id, alert.severity) == (
        "credentials_invalid", "shop", "critical")
    asked = len(fake.requests)
    assert _sync_shop("acme").success, "a stopped source does not fail the tenant's runs"
    assert len(fake.requests) == asked, "and is not asked again"
    _cli("connect", "shopify", "--tenant", "acme", "--shop", SHOP, "--access-token-stdin",
         input=TOKEN + "\n")
    assert tenants.rejected_sources(tenants.get("acme")) == {}
    assert platform.rejected_credentials("acme") == []


def test_only_a_loopback_endpoint_may_replace_the_shop(data_dir):
    tenants.add("acme")
    for url in ("http://203.0.113.9:8080", "https://evil.example", "http://127.0.0.1:9/x"):
        output = _cli("tenants", "configure", "acme", "--endpoint", f"shop={url}", code=1)
        assert "loopback" in output
    assert "endpoint" not in tenants.get("acme").sources.get("shop", {})


def test_long_nested_lists_are_read_to_the_end(fake, shop):
    """Pages of 3 orders with 1 line item each: every order's lines still arrive whole."""
    since = DAY_BEFORE_END - timedelta(hours=12)
    provider = ShopifyProvider(_client(fake), lambda table: since, page_size=3,
                               nested_page_size=1, now=lambda: DAY_BEFORE_END)
    provider.rest_page_size = 1
    got = _read(provider, "orders", "order_line_items", "order_refund_line_items")
    assert provider.read_as == {"orders": "pages"}
    orders = set(got["orders"].column("id").to_pylist())
    lines = pa.concat_tables(shop.iter_table("raw_shop", "order_line_items"))
    expected = sorted(i for i, o in zip(lines.column("id").to_pylist(),
                                        lines.column("order_id").to_pylist()) if o in orders)
    assert sorted(got["order_line_items"].column("id").to_pylist()) == expected
    counts = {}
    for order in got["order_line_items"].column("order_id").to_pylist():
        counts[order] = counts.get(order, 0) + 1
    assert max(counts.values()) > 1, "the window holds an order with several lines"


def test_a_first_sync_starts_its_bulk_operations_together_and_bounds_its_queues(fake, shop):
    """Shopify builds up to 5 bulk files of a shop at once (the fake refuses a sixth); the
    refunds' line items are read while the orders file streams, so no table's queue fills
    with another's rows."""
    provider = ShopifyProvider(_client(fake), lambda table: None, chunk_rows=2_000)
    before = len(fake.requests)
    streams = {t: iter(provider(contract.table(contract.SHOP, t))) for t in BY_TABLE}
    deepest = 0
    while streams:
        for table, stream in list(streams.items()):
            if next(stream, None) is None:
                del streams[table]
            deepest = max([deepest, *map(len, provider._queues.values())])
    sent = [body["query"] for _, body in fake.requests[before:]]
    assert [q.startswith("mutation RunBulk") for q in sent[:4]] == [True] * 4
    assert set(provider.read_as.values()) == {"bulk"}
    # The refund reader runs on its own thread: on a loaded machine one more chunk can wait.
    # What this guards against is a queue growing with the stream (hundreds of chunks).
    assert deepest <= 4, deepest


def test_without_shopper_level_the_orders_are_read_without_their_customer(fake, shop):
    provider = ShopifyProvider(_client(fake), lambda table: None, shopper_level=False)
    before = len(fake.requests)
    orders = _read(provider, "orders")["orders"]
    sent = [json.dumps(body) for _, body in fake.requests[before:]]  # documents and variables
    assert any("orders" in q for q in sent) and not any("customer" in q for q in sent)
    assert orders.num_rows == sum(t.num_rows for t in shop.iter_table("raw_shop", "orders"))
    assert orders.column("customer_id").null_count == orders.num_rows


def test_only_a_graphql_answer_is_read_for_throttling():
    """A bulk download is streamed: the retry check must not read its body whole."""
    from cleargro_pipeline.sources.shopify.client import _throttled

    class Download:
        status_code, request = 200, type("Request", (), {"method": "GET"})()

        @property
        def content(self):
            raise AssertionError("the download was read whole")

    assert _throttled(Download(), None) is False


def test_a_failed_bulk_operation_is_an_error_naming_it(fake):
    fake.bulk_script = ["CREATED", "RUNNING", "FAILED"]
    provider = ShopifyProvider(_client(fake), lambda table: None)
    with pytest.raises(bulk.BulkOperationFailed, match=r"gid://shopify/BulkOperation/\d+ .*FAILED"):
        _read(provider, "products")


def test_a_bulk_result_cut_short_is_an_error_not_a_partial_load(fake):
    fake.truncate_bulk = True
    try:
        provider = ShopifyProvider(_client(fake), lambda table: None)
        with pytest.raises(bulk.BulkOperationFailed, match="BulkOperation/"):
            _read(provider, "orders", "order_line_items", "order_refund_line_items")
    finally:
        fake.truncate_bulk = False


def test_a_version_shopify_fell_forward_to_is_reported():
    shop_ = DemoShop(size="small", seed=7, end_date=END, incidents=True, tenant="live")
    with FakeShopify(shop_, token=TOKEN, served_version="2027-01") as fake:
        told = []
        client = ShopifyClient(SHOP, lambda: TOKEN, endpoint=fake.url,
                               on_version=lambda pinned, served: told.append((pinned, served)))
        client.query("query { products(first: 1) { edges { node { id } } } }", name="probe")
        provider = ShopifyProvider(client, lambda table: None)
    assert told == [("2026-10", "2027-01")]
    assert provider.notices["api_version_served"] == "2027-01"


def test_a_loader_killed_mid_bulk_leaves_no_plaintext_and_the_next_sync_completes(
        shop, data_dir, monkeypatch):
    # dlt writes extracted rows to its working files every 10 items instead of holding them:
    # the plaintext this test looks for is on disk when the loader is killed.
    monkeypatch.setenv("DATA_WRITER__BUFFER_MAX_ITEMS", "10")
    products = pa.concat_tables(shop.iter_table("raw_shop", "products"))
    canary = products.column("title")[0].as_py()  # extracted before the orders' download hangs
    bootstrap.init()
    tenants.add("acme")
    with FakeShopify(shop, token=TOKEN) as fake:
        _cli("tenants", "configure", "acme", "--endpoint", f"shop={fake.url}")
        _cli("connect", "shopify", "--tenant", "acme", "--shop", SHOP, "--access-token-stdin",
             input=TOKEN + "\n")
        plan = {"shop": ingest.ShopifyPlan(tenant="acme", shop=SHOP, endpoint=fake.url)}
        fake.stall_query = "orders"
        outcome: list[BaseException] = []
        loading = threading.Thread(target=lambda: _catch(outcome, ingest.load, "acme", plan, ("shop",)))
        loading.start()
        assert fake.download_stalled.wait(120), "the orders' download reached its halfway point"
        (loader,) = [p for p in multiprocessing.active_children() if p.name == "cleargro-load-acme"]
        work = paths().tenant_work("acme")
        held = verify_at_rest.scan([work], [canary])
        os.kill(loader.pid, signal.SIGKILL)
        loading.join(60)
        assert isinstance(outcome[0], ingest.IngestError) and "SIGKILL" in str(outcome[0])
        assert verify_at_rest.scan(verify_at_rest.default_roots(data_dir), [canary]) == []
        assert held, "the scan can see it: dlt's working files held it while the loader ran"
        fake.stall_query = None
        (report,) = ingest.load("acme", plan, ("shop",))
    expected = {name: sum(t.num_rows for t in shop.iter_table("raw_shop", name))
                for name in ("products", "orders", "order_line_items")}
    with warehouse.open_warehouse("acme", purpose="test", read_only=True) as conn:
        for table, rows in expected.items():
            stored, distinct = conn.execute(
                f"select count(*), count(distinct id) from {warehouse.ALIAS}.raw_shop.{table}").fetchone()
            assert stored == distinct == rows, table


def _catch(outcome: list, call, *args) -> None:
    try:
        call(*args)
    except BaseException as error:  # noqa: BLE001 - handed to the test's thread
        outcome.append(error)


def test_read_ahead_keeps_order_raises_in_place_and_closes_an_abandoned_read():
    closed_on: list[str] = []

    def blocks(fail_at: int | None = None) -> Iterator[int]:
        try:
            for block in range(5):
                if block == fail_at:
                    raise bulk.BulkOperationFailed("the result stops after 3 objects")
                yield block
        finally:  # where a real read closes its download
            closed_on.append(threading.current_thread().name)

    assert list(bulk.read_ahead(blocks())) == [0, 1, 2, 3, 4]
    before_error: list[int] = []
    with pytest.raises(bulk.BulkOperationFailed, match="stops after 3"):
        for block in bulk.read_ahead(blocks(fail_at=3)):
            before_error.append(block)
    assert before_error == [0, 1, 2]
    abandoned = bulk.read_ahead(blocks())
    assert next(abandoned) == 0
    abandoned.close()
    assert len(closed_on) == 3
    assert all(name.startswith("shopify-bulk-read") for name in closed_on)
