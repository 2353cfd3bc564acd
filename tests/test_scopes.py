"""Per-tenant data scopes: which sources and tables we read, and whether shopper-level data is
kept at all, enforced before dlt extracts anything.

Unit level: the dlt source built for a scope has no resource for a disallowed table (its
provider is never asked) and no disallowed column (the pseudonymiser is never called); dlt's
own schema after an extract lacks both. Integration level: a real load into a real encrypted
warehouse leaves no disallowed source, table, column or pseudonym value in it, and the models
still build on what the scope lets in; narrowing the scope of a tenant that already holds
data purges it.
"""

from __future__ import annotations

import shutil

import dlt
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cleargro_pipeline import ingest, tenants, warehouse
from cleargro_pipeline.controls import retention, scopes
from cleargro_pipeline.security import keys
from cleargro_pipeline.sources import contract
from cleargro_pipeline.sources.raw import contract_source
from cleargro_pipeline.tenants import InvalidSetting

NO_SHOPPERS = {"tables": {"shop": ["orders", "order_line_items", "order_refund_line_items",
                                   "products", "product_variants"]},
               "sources": ["shop", "ga4"], "shopper_level": False}


# --- settings ----------------------------------------------------------------------------------

def test_default_scope_is_everything_and_old_tenant_files_load(tenant, data_dir):
    config = (data_dir / "registry" / tenant / "tenant.json")
    text = config.read_text()
    for name in ("scopes", "retention_months", "disconnected_sources"):
        assert f'"{name}"' in text
    # A tenant.json written before these settings existed still loads, with the defaults.
    import json
    old = {k: v for k, v in json.loads(text).items()
           if k not in ("scopes", "retention_months", "disconnected_sources")}
    config.write_text(json.dumps(old))
    scope = scopes.of(tenants.get(tenant))
    assert scope.everything and scope == scopes.EVERYTHING
    assert all(scope.restrict(t) is t for t in contract.TABLES)
    assert tenants.get(tenant).retention_months is None


def test_settings_are_validated_and_normalised():
    clean = scopes.normalise({"sources": ["shop", "ga4", "shop"], "shopper_level": False,
                              "tables": {"shop": ["orders", "products"]}})
    assert clean == {"sources": ["ga4", "shop"], "tables": {"shop": ["orders", "products"]},
                     "shopper_level": False}
    assert scopes.normalise({"shopper_level": True}) == {}
    for bad, message in [
        ({"sources": ["shop", "tiktok"]}, "unknown source tiktok"),
        ({"sources": []}, "at least one source"),
        ({"tables": {"shop": ["orders", "emails"]}}, "unknown table emails of shop"),
        ({"tables": {"ga4": ["items_daily"]}, "sources": ["shop"]}, "scope sources leave out"),
        ({"tables": {"shop": ["customers"]}, "shopper_level": False}, "shopper-level data"),
        ({"shopper_level": "no"}, "true or false"),
        ({"everything": True}, "unknown scope setting"),
    ]:
        with pytest.raises(InvalidSetting, match=message):
            scopes.normalise(bad)


def test_cli_options_apply_in_order_to_the_current_settings():
    settings = scopes.parse_options(["sources=shop,ga4", "shop=orders,order_line_items",
                                     "shopper_level=false"])
    assert settings == {"sources": ["ga4", "shop"], "shopper_level": False,
                        "tables": {"shop": ["order_line_items", "orders"]}}
    assert scopes.parse_options(["shop=all", "sources=all"], settings) == {"shopper_level": False}
    assert scopes.parse_options(["all"], settings) == {}
    with pytest.raises(InvalidSetting, match="unknown scope"):
        scopes.parse_options(["tiktok=x"])


def test_shopper_level_data_is_the_customers_table_and_the_shopper_pseudonyms():
    assert [(t.dataset, t.name) for t in scopes.shopper_tables()] == [("raw_shop", "customers")]
    assert [(t.name, c) for t, c in scopes.shopper_columns()] == [("orders", "customer_pseudonym")]
    scope = scopes.from_settings({"shopper_level": False})
    orders = scope.restrict(contract.table("raw_shop", "orders"))
    assert "customer_pseudonym" not in orders.schema.names and orders.pseudonymised == ()
    assert scope.restrict(contract.table("raw_shop", "customers")) is None
    # The app's pseudonyms are merchants' staff users (and key the events): not shopper data.
    app = contract.table("raw_app", "app_events")
    assert scope.restrict(app) is app


def test_describe_says_what_is_read_and_kept(tenant):
    lines = scopes.describe(tenants.get(tenant))
    assert lines[0] == "sources read: all (shop, ga4, google_ads, app)"
    assert lines[1].startswith("shopper-level data: kept as keyed pseudonyms (raw_shop.customers")
    assert lines[-1] == "retention: all history kept"
    scopes.configure(tenant, NO_SHOPPERS)
    tenants.set_retention_months(tenant, 12)
    lines = scopes.describe(tenants.get(tenant))
    assert lines[0] == "sources read: shop, ga4; not read: google_ads, app"
    assert lines[1] == ("shop tables read: products, product_variants, orders, order_line_items, "
                        "order_refund_line_items; not read: inventory_items, inventory_levels, "
                        "locations, variant_price_history, inventory_level_history, customers")
    assert lines[2] == ("shopper-level data: none kept (not read: raw_shop.customers; dropped at "
                        "extraction: raw_shop.orders.customer_pseudonym)")
    assert lines[3] == "retention: 12 months of raw history"
    entry = [e for e in _audit() if e["action"] == "tenant_configured" and "scopes" in e["detail"]]
    assert entry and entry[-1]["detail"]["scopes"] == ["shopper_level", "sources", "tables"]


def _audit() -> list[dict]:
    import json

    from cleargro_pipeline.settings import paths
    return [json.loads(line) for line in paths().audit_log.read_text().splitlines()]


# --- unit level: the source handed to dlt ------------------------------------------------------

def _shop_chunks():
    """A tiny shop: every contract table with its columns, shopper ids in orders and customers."""
    def provide(raw):
        calls.append(raw.name)
        rows = {}
        for f in contract.table(raw.dataset, raw.name).schema:  # the full contract, like an API
            rows[f.name] = pa.array([None, None], f.type)
        for column, _ in contract.table(raw.dataset, raw.name).pseudonymised:
            rows[column] = pa.array([111, 222], pa.int64())
        for key in raw.primary_key:
            if key not in dict(contract.table(raw.dataset, raw.name).pseudonymised).values():
                typ = raw.schema.field(key).type
                rows[key] = pa.array([1, 2], pa.int64()).cast(typ) if not pa.types.is_timestamp(
                    typ) else pa.array([1, 2], pa.int64()).cast(pa.timestamp("us")).cast(typ)
        rows["email"] = pa.array(["a@example.com", "b@example.com"])  # outside the contract
        return [pa.table(rows)]
    calls: list[str] = []
    return provide, calls


def test_the_source_given_to_dlt_has_no_disallowed_table_or_column(tmp_path):
    provide, asked = _shop_chunks()
    hashed = []

    def pseudonymise(values):
        hashed.append(len(values))
        return pa.array(["p"] * len(values), pa.string())

    scope = scopes.from_settings(NO_SHOPPERS)
    source = contract_source("shop", provide, pseudonymise, incremental=False, scope=scope)
    assert set(source.resources) == {"orders", "order_line_items", "order_refund_line_items",
                                     "products", "product_variants"}
    orders = list(source.resources["orders"])
    assert orders and all("customer_pseudonym" not in t.column_names for t in orders)
    assert all("customer_id" not in t.column_names and "email" not in t.column_names
               for t in orders)

    # What dlt itself makes of it: extracted into a private working folder, then inspected.
    source = contract_source("shop", provide, pseudonymise, incremental=False, scope=scope)
    pipeline = dlt.pipeline(pipeline_name="scope_unit", pipelines_dir=str(tmp_path / "dlt"))
    pipeline.extract(source, loader_file_format="parquet")
    tables = pipeline.default_schema.data_table_names(include_incomplete=True)
    assert "customers" not in tables and "orders" in tables
    assert "customer_pseudonym" not in pipeline.default_schema.get_table_columns(
        "orders", include_incomplete=True)
    extracted = b"".join(p.read_bytes() for p in (tmp_path / "dlt").rglob("*") if p.is_file())
    assert b"customer_pseudonym" not in extracted and b"a@example.com" not in extracted
    # The disallowed table was never requested, and no pseudonym was ever computed.
    assert "customers" not in asked and hashed == []

    # The same source without a scope: customers and the pseudonyms are there (control).
    everything = contract_source("shop", provide, pseudonymise, incremental=False)
    assert "customers" in everything.resources
    assert "customer_pseudonym" in list(everything.resources["orders"])[0].column_names
    assert hashed


# --- integration level: a real load ------------------------------------------------------------

def _raw_layout(tenant: str) -> dict[str, dict[str, list[str]]]:
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        rows = conn.execute("select schema_name, table_name, column_name from duckdb_columns() "
                            "where database_name = 'wh' and starts_with(schema_name, 'raw_')"
                            ).fetchall()
    layout: dict[str, dict[str, list[str]]] = {}
    for schema, table, column in rows:
        layout.setdefault(schema, {}).setdefault(table, []).append(column)
    return layout


def _cells_matching(tenant: str, values: list[str]) -> dict[str, int]:
    """Every text column of every table holding one of `values`."""
    found = {}
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        columns = conn.execute("select schema_name, table_name, column_name from duckdb_columns() "
                               "where database_name = 'wh' and data_type = 'VARCHAR'").fetchall()
        conn.execute("create temp table canaries as select unnest(?::varchar[]) as v", [values])
        for schema, table, column in columns:
            (n,) = conn.execute(f'select count(*) from "{schema}"."{table}" '
                                f'where "{column}" in (select v from canaries)').fetchone()
            if n:
                found[f"{schema}.{table}.{column}"] = n
    return found


def test_a_scoped_load_stores_no_disallowed_source_table_column_or_pseudonym(tenant):
    from cleargro_pipeline.demo.generator import DemoShop

    scopes.configure(tenant, NO_SHOPPERS)
    plan = ingest.DemoPlan(size="small")
    reports = ingest.load(tenant, plan, ("shop", "ga4", "google_ads"))
    assert [r.system for r in reports] == ["shop", "ga4"]  # google_ads is out of scope
    assert set(reports[0].rows) == set(NO_SHOPPERS["tables"]["shop"])
    assert reports[0].rows["orders"] > 10_000

    layout = _raw_layout(tenant)
    assert not [s for s in layout if s.startswith("raw_google_ads")]
    assert {t for t in layout["raw_shop"] if not t.startswith("_dlt")} == set(
        NO_SHOPPERS["tables"]["shop"])
    assert [f"{s}.{t}.{c}" for s, tables in layout.items() for t, cols in tables.items()
            for c in cols if "pseudonym" in c or c == "customer_id"] == []

    # Canary: the pseudonyms these shoppers would have had are nowhere in the warehouse.
    shop = DemoShop(size="small", seed=plan.seed, end_date=plan.end_date,
                    incidents=plan.incidents, tenant=plan.tenant)
    ids = pa.chunked_array([chunk.column("customer_id").drop_null()
                            for chunk in shop.iter_table("raw_shop", "orders")])
    canaries = keys.pseudonymiser(tenant, "ingest")(pc.unique(ids)).to_pylist()
    assert len(canaries) > 1000 and all(len(c) == 64 for c in canaries)
    assert _cells_matching(tenant, canaries) == {}

    # The models still build on what the scope lets in (missing tables and columns are
    # staged empty / NULL), and nothing in them links an order to a shopper.
    assert retention.rebuild_models(tenant, ["shop", "ga4", "google_ads", "app"],
                                    full_refresh=False, if_built=False)
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        assert conn.execute("select count(*) > 10000, count(customer_pseudonym) "
                            "from marts.fct_orders").fetchone() == (True, 0)
        assert conn.execute("select count(*) from staging.stg_shop__customers").fetchone() == (0,)
        assert conn.execute("select count(*) from marts.fct_daily_sales").fetchone()[0] == 730
    assert _cells_matching(tenant, canaries) == {}


# --- narrowing the scope of a tenant that holds data ---------------------------------------------

@pytest.fixture
def shopify_drop(tmp_path, shopify_fixtures):
    folder = tmp_path / "drop"
    folder.mkdir()
    for name in ("orders.json", "customer.json", "products.json"):
        shutil.copy(shopify_fixtures / name, folder)
    return folder


def test_narrowing_the_scope_purges_what_is_already_stored(tenant, shopify_drop):
    drop = ingest.FileDropPlan(shopify_drop)
    ingest.load(tenant, drop)
    assert "customers" in _raw_layout(tenant)["raw_shop"]
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        stored = [p for (p,) in conn.execute("select customer_pseudonym from raw_shop.orders "
                                             "union all select customer_pseudonym from "
                                             "raw_shop.customers").fetchall()]
    assert stored and all(p and len(p) == 64 for p in stored)

    scopes.configure(tenant, {"shopper_level": False})
    purged = scopes.purge(tenant)
    assert purged.dropped_tables == ["raw_shop.customers"]
    assert purged.cleared_columns == {"raw_shop.orders.customer_pseudonym": 1}
    assert purged.rebuilt is False  # no models yet: nothing to rebuild
    assert "customers" not in _raw_layout(tenant)["raw_shop"]
    assert _cells_matching(tenant, stored) == {}
    assert [e for e in _audit() if e["action"] == "scope_purged"]

    # The same drop again, out of scope now: the existing orders table gets no pseudonym.
    assert [r.system for r in ingest.load(tenant, drop)] == ["shop"]
    assert "customers" not in _raw_layout(tenant)["raw_shop"]
    assert _cells_matching(tenant, stored) == {}
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        assert conn.execute("select count(*), count(customer_pseudonym) from raw_shop.orders"
                            ).fetchone() == (1, 0)

    # Allowed again, the table comes back with the next load.
    scopes.configure(tenant, {})
    ingest.load(tenant, drop)
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        assert conn.execute("select count(*) from raw_shop.customers").fetchone() == (1,)


def test_an_out_of_scope_source_is_not_loaded_from_a_file_drop_either(tenant, shopify_drop):
    scopes.configure(tenant, {"sources": ["ga4"]})
    assert ingest.load(tenant, ingest.FileDropPlan(shopify_drop)) == []
    assert not warehouse_has_schema(tenant, "raw_shop")


def warehouse_has_schema(tenant: str, schema: str) -> bool:
    from cleargro_pipeline.settings import paths
    if not paths().warehouse(tenant).exists():
        return False
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        return bool(conn.execute("select count(*) from duckdb_schemas() where database_name = "
                                 "'wh' and schema_name = ?", [schema]).fetchone()[0])

