import copy
import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from cleargro_pipeline.security.pseudonyms import hmac_pseudonymiser
from cleargro_pipeline.sources import contract, shopify_json
from cleargro_pipeline.sources.file_drop import DropFileError, read_drop
from cleargro_pipeline.sources.minimise import minimise

# The shared fixtures sit beside the checkout (as in conftest.py), read-only.
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "shopify"
SHOP, GA4, ADS = contract.SHOP, contract.GA4, contract.GOOGLE_ADS
UTC = dt.timezone.utc

GA4_ITEMS = """date,itemId,itemName,itemsViewed,itemsAddedToCart,itemsPurchased,itemRevenue
20240101,SKU-1,Blue mug,120,10,3,45.5
2024-01-01,SKU-2,Red mug,80,4,1,15
20240102,SKU-1,Blue mug,100,8,2,30.0
"""
GA4_TRAFFIC = """date,sessionSourceMedium,sessions,engagedSessions,ecommercePurchases,purchaseRevenue
20240101,google / cpc,300,200,5,120.5
20240101,(direct) / (none),150,90,2,40
"""
ADS_CAMPAIGNS = ("segments.date,campaign.id,campaign.name,campaign.status,campaign.advertising_channel_type,"
                 "campaign_budget.amount_micros,metrics.cost_micros,metrics.impressions,metrics.clicks,"
                 "metrics.conversions,metrics.conversions_value,metrics.search_impression_share,"
                 "metrics.search_budget_lost_impression_share,unknown.extra\n"
                 "2024-01-01,111,Brand,ENABLED,SEARCH,50000000,12340000,1000,50,2.5,99.9,0.8,,ignored\n")
ADS_SEARCH_TERMS = ("segments.date,campaign.id,ad_group.id,search_term_view.search_term,metrics.cost_micros,"
                    "metrics.impressions,metrics.clicks,metrics.conversions,metrics.conversions_value\n"
                    '2024-01-01,111,222,"mugs, blue",1000000,10,1,0,0\n')


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def _fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def drop(tmp_path):
    """The real Shopify fixtures (products.json aside: see its own test) and GA4/Ads CSVs."""
    for path in FIXTURES.glob("*.json"):
        if path.name != "products.json":
            shutil.copy(path, tmp_path)
    _write(tmp_path, "ga4_items.csv", GA4_ITEMS)
    _write(tmp_path, "ga4_traffic.csv", GA4_TRAFFIC)
    _write(tmp_path, "google_ads_campaigns.csv", ADS_CAMPAIGNS)
    _write(tmp_path, "google_ads_search_terms.csv", ADS_SEARCH_TERMS)
    return tmp_path


def _error(directory: Path) -> DropFileError:
    with pytest.raises(DropFileError) as caught:
        read_drop(directory)
    return caught.value


# --- happy paths ---------------------------------------------------------------

def test_reads_every_known_file_and_lists_unknown_ones(drop):
    _write(drop, "notes.txt", "hello")
    contents = read_drop(drop)
    assert {p.name for p in contents.files} == {
        "customer.json", "inventory_items.json", "inventory_levels.json", "locations.json", "orders.json",
        "ga4_items.csv", "ga4_traffic.csv", "google_ads_campaigns.csv", "google_ads_search_terms.csv"}
    assert [p.name for p in contents.ignored] == ["notes.txt"]
    assert set(contents) == {
        (SHOP, "customers"), (SHOP, "inventory_items"), (SHOP, "inventory_levels"), (SHOP, "locations"),
        (SHOP, "orders"), (SHOP, "order_line_items"), (SHOP, "order_refund_line_items"),
        (GA4, "items_daily"), (GA4, "traffic_daily"), (ADS, "campaign_daily"), (ADS, "search_term_daily")}
    assert contents[(SHOP, "inventory_levels")].num_rows == 4
    assert contents[(SHOP, "order_line_items")].num_rows == 0  # the fixture order has no line_items


def test_fixture_order_fields(drop):
    order = read_drop(drop)[(SHOP, "orders")].to_pylist()[0]
    assert order["id"] == 450789469 and order["customer_id"] == 207119551
    assert order["created_at"] == dt.datetime(2008, 1, 10, 16, tzinfo=UTC)  # -05:00 -> UTC
    assert order["total_price"] == Decimal("598.94")
    assert order["total_shipping_price"] == Decimal("0.00")
    assert order["discount_codes"] is None and order["fulfillment_status"] is None


def test_csv_types_and_both_ga4_date_forms(drop):
    contents = read_drop(drop)
    items = contents[(GA4, "items_daily")]
    assert items.schema == contract.table(GA4, "items_daily").schema
    assert items.column("date").to_pylist() == [dt.date(2024, 1, 1)] * 2 + [dt.date(2024, 1, 2)]
    assert items.column("itemRevenue").to_pylist() == [45.5, 15.0, 30.0]
    campaigns = contents[(ADS, "campaign_daily")]
    assert campaigns.schema == contract.table(ADS, "campaign_daily").schema  # extra column dropped
    row = campaigns.to_pylist()[0]
    assert row["metrics.cost_micros"] == 12340000 and row["metrics.search_budget_lost_impression_share"] is None
    assert contents[(ADS, "search_term_daily")].column("search_term_view.search_term")[0].as_py() == "mugs, blue"


def test_orders_with_line_items_refunds_and_discounts(tmp_path):
    body = _fixture("orders.json")
    order = body["orders"][0]
    order["updated_at"] = "2024-03-01T10:00:00+01:00"
    order["discount_codes"] = [{"code": "SPRING", "amount": "5.00"}, {"code": "VIP", "amount": "5.00"}]
    order["line_items"] = [
        {"id": 1, "product_id": 7, "variant_id": 70, "sku": "A", "title": "Mug", "quantity": 2,
         "price": "10.00", "total_discount": "0.00", "properties": [{"name": "gift note", "value": "x"}]},
        {"id": 2, "variant_id": None, "title": "Custom", "quantity": 1, "price": "5.50"}]
    order["refunds"] = [{"id": 9, "created_at": "2024-03-02T12:00:00-02:00", "refund_line_items": [
        {"id": 90, "line_item_id": 1, "quantity": 1, "subtotal": 9.5}]}]
    _write(tmp_path, "orders.json", json.dumps(body))
    contents = read_drop(tmp_path)
    assert contents[(SHOP, "orders")].column("discount_codes").to_pylist() == ["SPRING,VIP"]
    items = contents[(SHOP, "order_line_items")].to_pylist()
    assert [(i["id"], i["order_id"], i["product_id"], i["price"]) for i in items] == [
        (1, 450789469, 7, Decimal("10.00")), (2, 450789469, None, Decimal("5.50"))]
    assert items[0]["order_updated_at"] == dt.datetime(2024, 3, 1, 9, tzinfo=UTC)
    refund = contents[(SHOP, "order_refund_line_items")].to_pylist()[0]
    assert refund == {"id": 90, "refund_id": 9, "order_id": 450789469, "line_item_id": 1, "quantity": 1,
                      "subtotal": Decimal("9.50"), "created_at": dt.datetime(2024, 3, 2, 14, tzinfo=UTC),
                      "order_updated_at": dt.datetime(2024, 3, 1, 9, tzinfo=UTC)}


def test_products_wrapped_or_bare_with_missing_variant_fields(tmp_path):
    products = _fixture("products.json")
    for n, product in enumerate(products):
        product["variants"][0]["id"] = 1000 + n  # the fixture reuses one variant id (see below)
    del products[3]["variants"][0]["product_id"]
    tables = shopify_json.parse_products({"products": products})
    assert tables["products"].num_rows == 4
    variants = tables["product_variants"].to_pylist()
    assert variants[3]["product_id"] == 4  # missing: taken from the product it is nested in
    assert all(v["inventory_item_id"] is None for v in variants)
    _write(tmp_path, "products.json", json.dumps(products))
    assert read_drop(tmp_path)[(SHOP, "product_variants")].num_rows == 4


def test_customers_list_body():
    body = {"customers": [_fixture("customer.json")["customer"], {"id": 5, "total_spent": "0.00"}]}
    table = shopify_json.parse_customers(body)["customers"]
    assert table.column("id").to_pylist() == [207119551, 5]
    assert table.column("total_spent").to_pylist() == [Decimal("41.94"), Decimal("0.00")]


# --- privacy -------------------------------------------------------------------

PII = ["bob.norman@hostmail.com", "hostmail", "Bob", "Norman", "Chestnut", "Louisville", "Kentucky", "40202",
       "555-625-1199", "+557734881234", "+16136120707", "0.0.0.0", "4242", "Visa", "authorize_net", "bogus",
       "b1946ac92492d2347c6235b4d2611184", "68778783ad298f1c80c3bafcddeea02f",
       "bd5a8aa1ecd019dd3520ff791ee3a24c", "45.41634", "207119551"]


def test_no_pii_survives_minimisation(drop):
    pseudonymise = hmac_pseudonymiser(b"k" * 32, "tenant")
    contents = read_drop(drop)
    cells = []
    for key, table in contents.items():
        out = minimise(contract.table(*key), table, pseudonymise)
        for column in out.columns:
            cells += [str(v) for v in column.cast(pa.string()).to_pylist()]
    assert len(cells) > 50
    leaked = [value for value in PII if any(value in cell for cell in cells)]
    assert leaked == []
    assert any(len(cell) == 64 for cell in cells)  # the customer pseudonyms are there


# --- malformed files -----------------------------------------------------------

def test_real_products_fixture_keeps_the_last_listing_of_a_repeated_variant(tmp_path):
    # Shopify's fixture lists variant 808950810 under all four products: one variant, last wins.
    shutil.copy(FIXTURES / "products.json", tmp_path)
    tables = read_drop(tmp_path).tables
    variants = tables[("raw_shop", "product_variants")].to_pylist()
    assert [(v["id"], v["product_id"]) for v in variants] == [(808950810, 4)]
    assert tables[("raw_shop", "products")].num_rows == 4


def test_invalid_json_names_the_line(drop):
    _write(drop, "locations.json", '{\n  "locations": [\n    {"id": 1,}\n  ]\n}\n')
    error = _error(drop)
    assert (error.file, error.line) == ("locations.json", 3)
    assert error.reason.startswith("invalid JSON: Expecting property name")


def test_wrong_top_level_shape(drop):
    _write(drop, "orders.json", '{"order": {"id": 1}}')
    assert str(_error(drop)) == 'orders.json line 1: expected {"orders": [...]} or a bare list of records'


def test_bad_json_value_names_the_record_line_and_only_that_value(drop):
    body = _fixture("orders.json")
    body["orders"].append(copy.deepcopy(body["orders"][0]) | {"id": 2, "total_price": "12,50"})
    text = json.dumps(body, indent=2)
    _write(drop, "orders.json", text)
    error = _error(drop)
    second_order_line = [i for i, line in enumerate(text.splitlines(), 1) if line == "    {"][1]
    assert (error.file, error.line) == ("orders.json", second_order_line)
    assert error.reason == "total_price '12,50' is not a decimal amount with at most 2 decimals"


def test_nested_object_in_a_scalar_field_is_not_quoted(drop):
    body = _fixture("orders.json")
    body["orders"][0]["currency"] = {"address1": "Chestnut Street 92"}
    _write(drop, "orders.json", json.dumps(body))
    error = _error(drop)
    assert error.reason == "currency is an object, expected string" and "Chestnut" not in str(error)


def test_bad_integer_at_a_known_line_does_not_echo_the_row(drop):
    _write(drop, "ga4_items.csv", GA4_ITEMS + "20240103,SKU-9,Secret name,abc,1,1,1.0\n")
    error = _error(drop)
    assert str(error) == "ga4_items.csv line 5: itemsViewed 'abc' is not an integer"
    assert "Secret name" not in str(error)


def test_bad_date(drop):
    _write(drop, "ga4_traffic.csv", GA4_TRAFFIC + "2024-13-01,google / organic,1,1,0,0\n")
    assert str(_error(drop)) == ("ga4_traffic.csv line 4: date '2024-13-01' is not a date "
                                 "(YYYY-MM-DD or YYYYMMDD)")


def test_missing_header_column(drop):
    _write(drop, "ga4_traffic.csv", "date,sessions\n20240101,3\n")
    error = _error(drop)
    assert (error.file, error.line) == ("ga4_traffic.csv", 1)
    assert error.reason == ("missing header column sessionSourceMedium, engagedSessions, "
                            "ecommercePurchases, purchaseRevenue")


def test_duplicate_key_names_both_lines(drop):
    _write(drop, "ga4_items.csv", GA4_ITEMS + "2024-01-02,SKU-1,Blue mug,1,1,1,1\n")
    assert str(_error(drop)) == ("ga4_items.csv line 5: duplicate key date=2024-01-02, itemId=SKU-1 "
                                 "(first on line 4)")


def test_duplicate_customer_does_not_quote_the_shopper_id(tmp_path):
    customer = _fixture("customer.json")["customer"]
    _write(tmp_path, "customers.json", json.dumps({"customers": [customer, customer]}, indent=1))
    error = _error(tmp_path)
    assert error.reason.startswith("duplicate key id (first on line ") and "207119551" not in str(error)


def test_empty_key_value(drop):
    _write(drop, "ga4_items.csv", GA4_ITEMS + "20240103,,Unnamed,1,1,1,1\n")
    assert str(_error(drop)) == "ga4_items.csv line 5: itemId is empty"


def test_row_with_wrong_field_count(drop):
    _write(drop, "ga4_items.csv", GA4_ITEMS + "20240103,SKU-3,private text\n")
    error = _error(drop)
    assert str(error) == "ga4_items.csv line 5: expected 7 fields, found 3"


def test_empty_csv_and_empty_directory(tmp_path):
    with pytest.raises(DropFileError, match="no importable files"):
        read_drop(tmp_path)
    _write(tmp_path, "ga4_items.csv", "")
    assert str(_error(tmp_path)) == "ga4_items.csv line 1: file is empty: expected a header line"


def test_customer_and_customers_together_are_ambiguous(drop):
    _write(drop, "customers.json", '{"customers": []}')
    assert "send one of the two" in str(_error(drop))


def test_one_bad_file_fails_the_whole_drop(drop):
    # Files are read in name order: good ones (customer.json, ga4_*) come before this one.
    _write(drop, "locations.json", '{"locations": [{"id": "x1"}]}')
    error = _error(drop)
    assert error.file == "locations.json" and error.reason == "id 'x1' is not an integer"


# --- app events (JSON Lines) -------------------------------------------------------

APP_EVENTS = (
    '{"ts": "2026-11-20T09:15:00Z", "user_id": "user-1", "event": "opportunity_viewed", "opportunity_id": "ab12"}\n'
    '\n'
    '{"ts": "2026-11-20T09:16:30Z", "user_id": 7, "event": "opportunity_dismissed", "opportunity_id": "ab12"}\n'
    '{"ts": "2026-11-23T08:00:00Z", "user_id": "user-1", "event": "report_opened", "opportunity_id": ""}\n'
)


def test_app_events_load_and_user_ids_are_pseudonymised(tmp_path):
    _write(tmp_path, "app_events.jsonl", APP_EVENTS)
    table = read_drop(tmp_path)[(contract.APP, "app_events")]
    assert table.column("event").to_pylist() == ["opportunity_viewed", "opportunity_dismissed", "report_opened"]
    assert table.column("user_id").to_pylist() == ["user-1", "7", "user-1"]
    stored = minimise(contract.table(contract.APP, "app_events"), table, hmac_pseudonymiser(b"k" * 32, "t"))
    assert "user_id" not in stored.column_names
    pseudonyms = stored.column("user_pseudonym").to_pylist()
    assert pseudonyms[0] == pseudonyms[2] != pseudonyms[1] and "user-1" not in pseudonyms
    assert stored.column("ts")[0].as_py() == dt.datetime(2026, 11, 20, 9, 15, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("line, reason", [
    ('{"ts": "yesterday", "user_id": "u", "event": "report_opened", "opportunity_id": ""}',
     "ts 'yesterday' is not a timestamp"),
    ('{"ts": "2026-11-20T09:15:00Z", "user_id": "u", "event": "opportunity_liked", "opportunity_id": "x"}',
     "event 'opportunity_liked' is not one of"),
    ('["not", "an", "object"]', "expected one JSON object per line"),
    ('{"ts": "2026-11-20T09:15:00Z", "user_id": {"email": "a@b.c"}, "event": "report_opened"}',
     "user_id is an object"),
])
def test_bad_app_event_names_its_line(tmp_path, line, reason):
    _write(tmp_path, "app_events.jsonl", APP_EVENTS + line + "\n")
    error = _error(tmp_path)
    assert error.file == "app_events.jsonl" and error.line == 5 and reason in error.reason
    assert "a@b.c" not in str(error)


def test_duplicate_app_event_is_rejected(tmp_path):
    first = APP_EVENTS.splitlines()[0]
    _write(tmp_path, "app_events.jsonl", APP_EVENTS + first + "\n")
    error = _error(tmp_path)
    assert error.line == 5 and "duplicate key" in error.reason
