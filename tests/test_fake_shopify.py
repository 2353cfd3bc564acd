"""The fake Shopify Admin GraphQL API (`fake_shopify.py`), checked over real HTTP against the
fixtures Shopify published and against the demo shop's raw tables it serves."""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.request
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cleargro_pipeline.demo.generator import DemoShop
from fake_shopify import FIXTURES, FakeShopify

END = date(2026, 11, 27)


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return DemoShop(size="small", seed=7, end_date=END, incidents=True, tenant="demo")


@pytest.fixture(scope="module")
def raw(shop: DemoShop) -> dict[str, pa.Table]:
    names = ("products", "product_variants", "inventory_items", "inventory_levels", "locations", "orders",
             "order_line_items", "order_refund_line_items", "customers")
    return {n: pa.concat_tables(shop.iter_table("raw_shop", n)).combine_chunks() for n in names}


@pytest.fixture(scope="module")
def fake(shop: DemoShop):
    with FakeShopify(shop) as server:
        yield server


@pytest.fixture(scope="module")
def roomy(shop: DemoShop):
    """A fake with a bucket big enough to page through the shop without waiting."""
    with FakeShopify(shop, bucket_max=100_000.0, restore_rate=100_000.0) as server:
        yield server


@pytest.fixture
def fresh(shop: DemoShop):
    """A fake of its own, for tests that change its state."""
    servers: list[FakeShopify] = []

    def make(**kwargs: Any) -> FakeShopify:
        servers.append(FakeShopify(shop, **kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def post(fake: FakeShopify, query: str, variables: dict | None = None, *, token: str | None = None,
         version: str | None = None) -> tuple[int, Any, Any]:
    url = f"{fake.url}/admin/api/{version or fake.api_version}/graphql.json"
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json",
                                                 "X-Shopify-Access-Token": token or fake.token})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def data_of(fake: FakeShopify, query: str, variables: dict | None = None) -> dict:
    """The data of a query that must succeed; waits out THROTTLED answers as a client must."""
    for _ in range(50):
        status, _, body = post(fake, query, variables)
        if status == 200 and body.get("errors", [{}])[0].get("extensions", {}).get("code") == "THROTTLED":
            cost = body["extensions"]["cost"]
            missing = cost["requestedQueryCost"] - cost["throttleStatus"]["currentlyAvailable"]
            time.sleep(max(missing, 1) / cost["throttleStatus"]["restoreRate"])
            continue
        assert status == 200 and "errors" not in body, body
        return body["data"]
    raise AssertionError("throttled for good")


def gid_number(gid: str) -> int:
    return int(re.fullmatch(r"gid://shopify/\w+/(\d+)", gid).group(1))


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def floor_seconds(ts: datetime) -> datetime:
    return ts.replace(microsecond=0)


def money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


# --------------------------------------------------------------------------- wire format

def test_the_fixture_query_is_answered_with_shopifys_keys_and_types(fake: FakeShopify, raw: dict) -> None:
    fixture = json.loads((FIXTURES / "product_query_with_cost.json").read_text())
    product = raw["products"].slice(0, 1).to_pylist()[0]
    status, headers, body = post(fake, "query ProductQuery($id: ID!) { product(id: $id) { id title handle } }",
                                 {"id": f"gid://shopify/Product/{product['id']}"})
    assert status == 200 and headers["Content-Type"] == "application/json"

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        return type(value).__name__

    assert shape(body) == shape(fixture)  # same keys at every level, same JSON types (1000.0 float, 999 int)
    assert body["data"]["product"] == {"id": f"gid://shopify/Product/{product['id']}",
                                       "title": product["title"], "handle": product["handle"]}
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == cost["actualQueryCost"] == fixture["extensions"]["cost"]["actualQueryCost"]


def test_an_unknown_field_is_refused_as_shopify_refuses_it(fake: FakeShopify) -> None:
    status, _, body = post(fake, '{ product(id: "gid://shopify/Product/1") { id title inventoryManagement } }')
    assert status == 200 and "data" not in body
    [error] = body["errors"]
    assert error["message"] == "Field 'inventoryManagement' doesn't exist on type 'Product'"
    assert error["extensions"] == {"code": "undefinedField", "typeName": "Product",
                                   "fieldName": "inventoryManagement"}
    assert error["path"] == ["query", "product", "inventoryManagement"]
    # a field that exists in 2026-01 passes the same check
    assert post(fake, '{ product(id: "gid://shopify/Product/1") { id } }')[2]["data"] == {"product": None}
    # one the fake does not fill says so, rather than answering a null Shopify would not send
    _, _, body = post(fake, "{ products(first: 1) { nodes { id totalInventory } } }")
    assert body["errors"][0]["extensions"]["code"] == "FAKE_NOT_SERVED"
    assert "Product.totalInventory" in body["errors"][0]["message"]


def test_every_mapped_field_exists_and_carries_the_contract_value(fake: FakeShopify, raw: dict) -> None:
    order_row = next(r for r in raw["orders"].to_pylist() if r["discount_codes"] and r["cancel_reason"] is None
                     and r["financial_status"] == "partially_refunded")
    refund_rows = [r for r in raw["order_refund_line_items"].to_pylist() if r["order_id"] == order_row["id"]]
    line_rows = [r for r in raw["order_line_items"].to_pylist() if r["order_id"] == order_row["id"]]
    bag = "{ shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }"
    order = data_of(fake, f"""query($id: ID!) {{ order(id: $id) {{
        id name number createdAt processedAt updatedAt cancelledAt cancelReason closedAt closed
        displayFinancialStatus displayFulfillmentStatus currencyCode test sourceName discountCodes
        customer {{ id }} totalPriceSet {bag} subtotalPriceSet {bag} totalDiscountsSet {bag} totalTaxSet {bag}
        totalShippingPriceSet {bag}
        lineItems(first: 50) {{ nodes {{ id sku title name quantity currentQuantity variant {{ id }} product {{ id }}
            originalUnitPriceSet {bag} totalDiscountSet {bag} }} }}
        refunds {{ id createdAt updatedAt order {{ id }} refundLineItems(first: 50) {{ nodes {{
            id quantity subtotalSet {bag} lineItem {{ id }} restockType }} }} }}
    }} }}""", {"id": f"gid://shopify/Order/{order_row['id']}"})["order"]
    usd = lambda v: {"amount": money(v), "currencyCode": "USD"}  # noqa: E731
    assert order == {
        "id": f"gid://shopify/Order/{order_row['id']}", "name": order_row["name"], "number": order_row["order_number"],
        "createdAt": iso(order_row["created_at"]), "processedAt": iso(order_row["processed_at"]),
        "updatedAt": iso(order_row["updated_at"]), "cancelledAt": None, "cancelReason": None,
        "closedAt": iso(order_row["closed_at"]), "closed": order_row["closed_at"] is not None,
        "displayFinancialStatus": "PARTIALLY_REFUNDED",
        "displayFulfillmentStatus": {"fulfilled": "FULFILLED", None: "UNFULFILLED"}[order_row["fulfillment_status"]],
        "currencyCode": "USD", "test": order_row["test"], "sourceName": order_row["source_name"],
        "discountCodes": [c.strip() for c in order_row["discount_codes"].split(",")],
        "customer": {"id": f"gid://shopify/Customer/{order_row['customer_id']}"},
        **{f"{key}Set": {"shopMoney": usd(order_row[col]), "presentmentMoney": usd(order_row[col])}
           for key, col in (("totalPrice", "total_price"), ("subtotalPrice", "subtotal_price"),
                            ("totalDiscounts", "total_discounts"), ("totalTax", "total_tax"),
                            ("totalShippingPrice", "total_shipping_price"))},
        "lineItems": {"nodes": [{
            "id": f"gid://shopify/LineItem/{r['id']}", "sku": r["sku"], "title": r["title"], "name": r["title"],
            "quantity": r["quantity"], "currentQuantity": r["quantity"],
            "variant": {"id": f"gid://shopify/ProductVariant/{r['variant_id']}"},
            "product": {"id": f"gid://shopify/Product/{r['product_id']}"},
            "originalUnitPriceSet": {"shopMoney": usd(r["price"]), "presentmentMoney": usd(r["price"])},
            "totalDiscountSet": {"shopMoney": usd(r["total_discount"]), "presentmentMoney": usd(r["total_discount"])},
        } for r in sorted(line_rows, key=lambda r: r["id"])]},
        "refunds": [{
            "id": f"gid://shopify/Refund/{refund_rows[0]['refund_id']}", "createdAt": iso(refund_rows[0]["created_at"]),
            "updatedAt": iso(refund_rows[0]["created_at"]), "order": {"id": f"gid://shopify/Order/{order_row['id']}"},
            "refundLineItems": {"nodes": [{
                "id": f"gid://shopify/RefundLineItem/{r['id']}", "quantity": r["quantity"],
                "subtotalSet": {"shopMoney": usd(r["subtotal"]), "presentmentMoney": usd(r["subtotal"])},
                "lineItem": {"id": f"gid://shopify/LineItem/{r['line_item_id']}"}, "restockType": "NO_RESTOCK",
            } for r in sorted(refund_rows, key=lambda r: r["id"])]},
        }],
    }

    variant_row = next(r for r in raw["product_variants"].to_pylist() if r["compare_at_price"] is not None)
    item_row = next(r for r in raw["inventory_items"].to_pylist() if r["id"] == variant_row["inventory_item_id"])
    product_row = next(r for r in raw["products"].to_pylist() if r["id"] == variant_row["product_id"])
    levels = sorted((r for r in raw["inventory_levels"].to_pylist() if r["inventory_item_id"] == item_row["id"]),
                    key=lambda r: r["location_id"])
    locations = {r["id"]: r for r in raw["locations"].to_pylist()}
    product = data_of(fake, """query($id: ID!) { product(id: $id) {
        id title handle productType vendor status createdAt updatedAt publishedAt
        variants(first: 10) { nodes { id title sku price compareAtPrice inventoryPolicy inventoryQuantity createdAt
            updatedAt product { id } inventoryItem { id sku tracked unitCost { amount currencyCode } createdAt updatedAt
              inventoryLevels(first: 10) { nodes { id updatedAt item { id }
                location { id name isActive address { countryCode } createdAt updatedAt }
                quantities(names: ["available", "on_hand", "committed"]) { name quantity } } } } } } } }""",
                      {"id": f"gid://shopify/Product/{product_row['id']}"})["product"]
    assert {k: product[k] for k in product if k != "variants"} == {
        "id": f"gid://shopify/Product/{product_row['id']}", "title": product_row["title"],
        "handle": product_row["handle"], "productType": product_row["product_type"], "vendor": product_row["vendor"],
        "status": product_row["status"].upper(), "createdAt": iso(product_row["created_at"]),
        "updatedAt": iso(product_row["updated_at"]), "publishedAt": iso(product_row["published_at"])}
    variant = next(v for v in product["variants"]["nodes"] if v["id"].endswith(f"/{variant_row['id']}"))
    assert variant == {
        "id": f"gid://shopify/ProductVariant/{variant_row['id']}", "title": variant_row["title"],
        "sku": variant_row["sku"], "price": money(variant_row["price"]),
        "compareAtPrice": money(variant_row["compare_at_price"]),
        "inventoryPolicy": variant_row["inventory_policy"].upper(),
        "inventoryQuantity": variant_row["inventory_quantity"], "createdAt": iso(variant_row["created_at"]),
        "updatedAt": iso(variant_row["updated_at"]), "product": {"id": product["id"]},
        "inventoryItem": {
            "id": f"gid://shopify/InventoryItem/{item_row['id']}", "sku": item_row["sku"],
            "tracked": item_row["tracked"], "unitCost": usd(item_row["cost"]),
            "createdAt": iso(item_row["created_at"]), "updatedAt": iso(item_row["updated_at"]),
            "inventoryLevels": {"nodes": [{
                "id": f"gid://shopify/InventoryLevel/{r['location_id']}?inventory_item_id={item_row['id']}",
                "updatedAt": iso(r["updated_at"]), "item": {"id": f"gid://shopify/InventoryItem/{item_row['id']}"},
                "location": {"id": f"gid://shopify/Location/{r['location_id']}",
                             "name": locations[r["location_id"]]["name"],
                             "isActive": locations[r["location_id"]]["active"],
                             "address": {"countryCode": locations[r["location_id"]]["country_code"]},
                             "createdAt": iso(locations[r["location_id"]]["created_at"]),
                             "updatedAt": iso(locations[r["location_id"]]["updated_at"])},
                "quantities": [{"name": "available", "quantity": r["available"]},
                               {"name": "on_hand", "quantity": r["available"]},
                               {"name": "committed", "quantity": 0}],
            } for r in levels]},
        },
    }

    customer_row = raw["customers"].slice(0, 1).to_pylist()[0]
    customer = data_of(fake, """query($id: ID!) { customer(id: $id) { id createdAt updatedAt numberOfOrders
        amountSpent { amount currencyCode } state firstName lastName email phone } }""",
                       {"id": f"gid://shopify/Customer/{customer_row['id']}"})["customer"]
    assert customer == {
        "id": f"gid://shopify/Customer/{customer_row['id']}", "createdAt": iso(customer_row["created_at"]),
        "updatedAt": iso(customer_row["updated_at"]), "numberOfOrders": str(customer_row["orders_count"]),
        "amountSpent": usd(customer_row["total_spent"]), "state": customer_row["state"].upper(),
        "firstName": customer_row["first_name"], "lastName": customer_row["last_name"],
        "email": customer_row["email"], "phone": customer_row["phone"]}


def test_every_request_is_recorded_with_its_document(fake: FakeShopify) -> None:
    before = len(fake.requests)
    query = "query Few { locations(first: 5) { nodes { id name } } }"
    assert len(data_of(fake, query)["locations"]["nodes"]) == 3
    path, body = fake.requests[before]
    assert path == f"/admin/api/{fake.api_version}/graphql.json" and body["query"] == query


# --------------------------------------------------------------------------- rate limits and faults

def test_the_throttled_body_is_shopifys(fresh, raw: dict) -> None:
    mock = (FIXTURES / "throttled_error.mock-responses.ts.txt").read_text()
    message = re.search(r"message:\s*'([^']+)'", mock).group(1)
    code = re.search(r"code:\s*'([^']+)'", mock).group(1)
    fake = fresh()
    fake.fail_next("throttled")
    status, _, body = post(fake, "{ products(first: 10) { nodes { id } } }")
    assert status == 200 and "data" not in body
    [error] = body["errors"]
    assert (error["message"], error["extensions"]["code"]) == (message, code) == ("Throttled", "THROTTLED")
    assert body["extensions"]["cost"]["requestedQueryCost"] == 12  # 2 + 10 x 1
    assert post(fake, "{ products(first: 10) { nodes { id } } }")[0] == 200  # one fault, one request


def test_the_bucket_throttles_and_refills(fresh) -> None:
    fake = fresh(bucket_max=100.0, restore_rate=50.0)
    query = "{ products(first: 50) { edges { cursor node { id title } } pageInfo { hasNextPage } } }"
    status, _, first = post(fake, query)
    cost = first["extensions"]["cost"]
    assert status == 200 and "errors" not in first
    assert cost["requestedQueryCost"] == 52 and cost["actualQueryCost"] == 52
    assert cost["throttleStatus"] == {"maximumAvailable": 100.0, "currentlyAvailable": cost["throttleStatus"][
        "currentlyAvailable"], "restoreRate": 50.0}
    assert 48 <= cost["throttleStatus"]["currentlyAvailable"] < 52
    _, _, second = post(fake, query)  # 52 > ~48 left: refused, not executed
    assert second["errors"][0]["extensions"]["code"] == "THROTTLED" and "data" not in second
    assert second["extensions"]["cost"]["actualQueryCost"] is None
    time.sleep(0.25)  # 50 points a second
    _, _, third = post(fake, query)
    assert "errors" not in third and len(third["data"]["products"]["edges"]) == 50
    # a query only partly used pays what it used: 250 asked, 120 products exist
    fake.set_available(100)
    _, _, fourth = post(fake, "{ products(first: 90) { nodes { id } } }")
    assert fourth["extensions"]["cost"]["requestedQueryCost"] == 92
    assert fourth["extensions"]["cost"]["actualQueryCost"] == 92


def test_a_query_over_the_single_query_limit_is_refused(fake: FakeShopify) -> None:
    status, _, body = post(fake, "{ products(first: 100) { nodes { id variants(first: 20) { nodes { id } } } } }")
    [error] = body["errors"]
    assert status == 200 and "data" not in body
    assert error["message"].startswith(
        "Query cost is 2302, which exceeds the single query max cost limit (1000).")  # 2 + 100 x (1 + 2 + 20)
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED" and error["extensions"]["cost"] == 2302


def test_connections_need_a_page_size_of_at_most_250(fake: FakeShopify) -> None:
    _, _, missing = post(fake, "{ products { nodes { id } } }")
    assert missing["data"] is None
    assert missing["errors"][0]["message"] == "you must provide one of first or last"
    assert missing["errors"][0]["path"] == ["products"]
    _, _, nested = post(fake, "{ products(first: 1) { nodes { id variants { nodes { id } } } } }")
    assert nested["errors"][0]["message"] == "you must provide one of first or last"
    assert nested["errors"][0]["path"] == ["products", "nodes", 0, "variants"]
    _, _, too_many = post(fake, "{ customers(first: 251) { nodes { id } } }")
    assert "at most 250" in too_many["errors"][0]["message"] and too_many["data"] is None


def test_a_wrong_token_gets_401(fake: FakeShopify) -> None:
    status, headers, body = post(fake, "{ shop { id } }", token="shpat_wrong")
    assert status == 401
    assert body == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
    assert headers["X-Shopify-API-Version"] == fake.served_version


def test_scripted_faults_hit_one_request_each(fresh) -> None:
    fake = fresh()
    fake.fail_next("http429", "http500", "http503", "drop", "unauthorized")
    status, headers, body = post(fake, "{ shop { id } }")
    assert status == 429 and headers["Retry-After"] == "1"
    assert body == {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume "
                              "uninterrupted service."}
    assert post(fake, "{ shop { id } }")[0] == 500
    assert post(fake, "{ shop { id } }")[0] == 503
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        post(fake, "{ shop { id } }")
    assert post(fake, "{ shop { id } }")[0] == 401
    assert post(fake, "{ shop { id } }")[0] == 200
    assert len(fake.requests) == 6
    with pytest.raises(ValueError):
        fake.fail_next("timeout")


def test_the_version_header_says_which_version_answered(fresh) -> None:
    fake = fresh(api_version="2026-10", served_version="2026-07")
    status, headers, _ = post(fake, "{ shop { id } }", version="2024-01")  # any path version is answered
    assert status == 200 and headers["X-Shopify-API-Version"] == "2026-07"
    assert post(fake, "{ shop { id } }", token="nope")[1]["X-Shopify-API-Version"] == "2026-07"


# --------------------------------------------------------------------------- pages and search

def page_all(fake: FakeShopify, field: str, args: str, page_size: int) -> tuple[list[str], int]:
    ids, after, requests = [], None, 0
    while True:
        data = data_of(fake, f"""query($after: String) {{ {field}(first: {page_size}, after: $after{args}) {{
            edges {{ cursor node {{ id }} }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }}""",
                       {"after": after})[field]
        requests += 1
        ids += [edge["node"]["id"] for edge in data["edges"]]
        info = data["pageInfo"]
        assert info["hasPreviousPage"] == (after is not None)
        if data["edges"]:
            assert info["startCursor"] == data["edges"][0]["cursor"]
            assert info["endCursor"] == data["edges"][-1]["cursor"]
        if not info["hasNextPage"]:
            return ids, requests
        after = info["endCursor"]


def test_cursor_pages_of_a_top_level_connection_reach_every_row_once(roomy: FakeShopify, raw: dict) -> None:
    products = raw["products"]
    expected = sorted(zip([floor_seconds(t) for t in products["updated_at"].to_pylist()], products["id"].to_pylist()))
    ids, requests = page_all(roomy, "products", ", sortKey: UPDATED_AT", 7)
    assert [gid_number(g) for g in ids] == [pid for _, pid in expected]  # by updatedAt, then id
    assert requests == -(-products.num_rows // 7)
    backwards, _ = page_all(roomy, "products", ", sortKey: UPDATED_AT, reverse: true", 50)
    assert backwards == ids[::-1]
    by_id, _ = page_all(roomy, "customers", "", 250)
    assert [gid_number(g) for g in by_id] == sorted(raw["customers"]["id"].to_pylist())


def test_cursor_pages_of_a_nested_connection_reach_every_row_once(roomy: FakeShopify, raw: dict) -> None:
    lines = raw["order_line_items"]
    counts = pc.value_counts(lines["order_id"]).to_pylist()
    order_id = max(counts, key=lambda c: (c["counts"], c["values"]))["values"]
    expected = sorted(r["id"] for r in lines.filter(pc.equal(lines["order_id"], order_id)).to_pylist())
    assert len(expected) >= 5
    seen, after = [], None
    while True:
        order = data_of(roomy, """query($id: ID!, $after: String) { order(id: $id) {
            lineItems(first: 2, after: $after) {
                edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }""",
                        {"id": f"gid://shopify/Order/{order_id}", "after": after})["order"]
        seen += [gid_number(e["node"]["id"]) for e in order["lineItems"]["edges"]]
        if not order["lineItems"]["pageInfo"]["hasNextPage"]:
            break
        after = order["lineItems"]["pageInfo"]["endCursor"]
    assert seen == expected


def orders_updated(raw: dict, keep) -> list[int]:
    rows = raw["orders"].select(["id", "updated_at"]).to_pylist()
    return sorted(r["id"] for r in rows if keep(floor_seconds(r["updated_at"])))


def test_the_updated_at_search_filters_at_shopifys_precision(roomy: FakeShopify, raw: dict) -> None:
    since = datetime(2026, 11, 20, tzinfo=timezone.utc)
    until = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)
    expected = orders_updated(raw, lambda t: since < t)
    assert 500 < len(expected) < 5000
    for query in ("updated_at:>'2026-11-20T00:00:00Z'", 'updated_at:>"2026-11-20T00:00:00Z"',
                  "updated_at:>2026-11-20T00:00:00Z", "status:any updated_at:>'2026-11-20T00:00:00Z'"):
        ids, _ = page_all(roomy, "orders", f", sortKey: UPDATED_AT, query: {json.dumps(query)}", 250)
        assert sorted(gid_number(g) for g in ids) == expected, query
    window = orders_updated(raw, lambda t: since <= t < until)
    for query in ("updated_at:>='2026-11-20T00:00:00Z' AND updated_at:<'2026-11-24T12:00:00Z'",
                  "updated_at:>=2026-11-20T00:00:00Z updated_at:<2026-11-24T12:00:00Z"):
        ids, _ = page_all(roomy, "orders", f", sortKey: UPDATED_AT, query: {json.dumps(query)}", 250)
        assert sorted(gid_number(g) for g in ids) == window, query


def test_the_cutoff_hides_rows_not_yet_written(fresh, raw: dict) -> None:
    fake = fresh()
    query = "updated_at:>='2026-11-24T00:00:00Z'"
    fake.set_cutoff(datetime(2026, 11, 25, tzinfo=timezone.utc))
    day_one, _ = page_all(fake, "orders", f", sortKey: UPDATED_AT, query: {json.dumps(query)}", 250)
    orders = raw["orders"].select(["id", "updated_at"]).to_pylist()
    day = lambda lo, hi: sorted(r["id"] for r in orders if lo <= r["updated_at"] < hi)  # noqa: E731
    d24, d25, d26 = (datetime(2026, 11, n, tzinfo=timezone.utc) for n in (24, 25, 26))
    assert sorted(gid_number(g) for g in day_one) == day(d24, d25)
    fake.set_cutoff(d26)  # a day of new orders appears
    day_two, _ = page_all(fake, "orders", f", sortKey: UPDATED_AT, query: {json.dumps(query)}", 250)
    assert sorted(gid_number(g) for g in day_two) == day(d24, d26) and len(day_two) > len(day_one)
    newest = max(orders, key=lambda r: r["updated_at"])
    assert data_of(fake, "query($id: ID!) { order(id: $id) { id } }",
                   {"id": f"gid://shopify/Order/{newest['id']}"})["order"] is None
    fake.set_cutoff(None)
    assert data_of(fake, "query($id: ID!) { order(id: $id) { id } }",
                   {"id": f"gid://shopify/Order/{newest['id']}"})["order"] is not None


def test_without_read_all_orders_only_60_days_are_returned(fresh, raw: dict) -> None:
    fake = fresh(read_all_orders=False)
    latest = max(raw["orders"]["created_at"].to_pylist())
    _, _, body = post(fake, "{ orders(first: 5, sortKey: CREATED_AT) { nodes { id createdAt } } }")
    oldest = datetime.fromisoformat(body["data"]["orders"]["nodes"][0]["createdAt"].replace("Z", "+00:00"))
    assert latest - timedelta(days=60) <= oldest < latest - timedelta(days=59)
    first_order = min(raw["orders"].to_pylist(), key=lambda r: r["created_at"])
    assert data_of(fake, "query($id: ID!) { order(id: $id) { id } }",
                   {"id": f"gid://shopify/Order/{first_order['id']}"})["order"] is None


# --------------------------------------------------------------------------- bulk operations

RUN = """mutation($q: String!) { bulkOperationRunQuery(query: $q) {
    bulkOperation { id status } userErrors { field message code } } }"""
POLL = """query($id: ID!) { bulkOperation(id: $id) { id status errorCode createdAt completedAt objectCount
    rootObjectCount fileSize url partialDataUrl query type } }"""
PRODUCTS = "{ products { edges { node { id title variants { edges { node { id title sku } } } } } } }"


def run_bulk(fake: FakeShopify, inner: str) -> str:
    result = data_of(fake, RUN, {"q": inner})["bulkOperationRunQuery"]
    assert result["userErrors"] == [] and result["bulkOperation"]["status"] == "CREATED"
    assert re.fullmatch(r"gid://shopify/BulkOperation/\d+", result["bulkOperation"]["id"])
    return result["bulkOperation"]["id"]


def poll(fake: FakeShopify, gid: str, until: str) -> list[dict]:
    seen = []
    for _ in range(10):
        seen.append(data_of(fake, POLL, {"id": gid})["bulkOperation"])
        if seen[-1]["status"] == until:
            return seen
    raise AssertionError(seen)


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # no access token: a signed storage URL
        return response.read()


def check_jsonl_shape(lines: list[str], child_type: str, parent_type: str) -> list[dict]:
    """What Shopify's published JSONL looks like: compact objects, `id` first, children carry
    `__parentId` as their last key, pointing at a parent line somewhere in the file."""
    objects = [json.loads(line) for line in lines]
    for line, obj in zip(lines, objects):
        assert line == json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        assert next(iter(obj)) == "id"
        if "__parentId" in obj:
            assert list(obj)[-1] == "__parentId" and f"/{child_type}/" in obj["id"]
    parents = {o["id"] for o in objects if "__parentId" not in o}
    assert all(f"/{parent_type}/" in p for p in parents)
    assert all(o["__parentId"] in parents for o in objects if "__parentId" in o)
    return objects


def test_the_fixture_jsonl_passes_the_shape_check() -> None:
    lines = (FIXTURES / "bulk_operation_result.jsonl").read_text().splitlines()
    check_jsonl_shape(lines, "ProductVariant", "Product")


def test_a_bulk_operation_end_to_end(fake: FakeShopify, raw: dict) -> None:
    gid = run_bulk(fake, PRODUCTS)
    states = poll(fake, gid, "COMPLETED")
    assert [s["status"] for s in states] == ["CREATED", "RUNNING", "COMPLETED"]
    done = states[-1]
    assert done["url"].startswith(f"{fake.url}/bulk/") and done["url"].endswith(".jsonl")
    assert (done["type"], done["query"], done["errorCode"], done["partialDataUrl"]) == ("QUERY", PRODUCTS, None, None)
    assert states[0]["url"] is None and states[0]["objectCount"] == "0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", done["completedAt"])
    assert poll(fake, gid, "COMPLETED")[0]["status"] == "COMPLETED"  # the last status repeats
    body = download(done["url"])
    lines = body.decode().splitlines()
    assert body.endswith(b"\n") and done["fileSize"] == str(len(body))
    objects = check_jsonl_shape(lines, "ProductVariant", "Product")
    products = [o for o in objects if "__parentId" not in o]
    variants = [o for o in objects if "__parentId" in o]
    assert done["objectCount"] == str(len(objects)) and done["rootObjectCount"] == str(len(products))
    assert sorted(gid_number(p["id"]) for p in products) == sorted(raw["products"]["id"].to_pylist())
    assert sorted(gid_number(v["id"]) for v in variants) == sorted(raw["product_variants"]["id"].to_pylist())
    parent_of = dict(zip(raw["product_variants"]["id"].to_pylist(), raw["product_variants"]["product_id"].to_pylist()))
    assert all(gid_number(v["__parentId"]) == parent_of[gid_number(v["id"])] for v in variants)
    assert all("variants" not in p for p in products)  # nested connections are lines of their own
    position = {o["id"]: n for n, o in enumerate(objects)}
    assert any(position[v["__parentId"]] > n for n, v in enumerate(objects) if "__parentId" in v)
    runs = {}  # children of one parent are not written together (groupObjects: false)
    for n, o in enumerate(objects):
        if "__parentId" in o:
            runs.setdefault(o["__parentId"], []).append(n)
    assert any(max(ns) - min(ns) + 1 > len(ns) for ns in runs.values())


def test_bulk_results_match_graphql_core_and_keep_inline_objects(fresh) -> None:
    fake = fresh()
    inner = """{ orders(query: "updated_at:>='2026-11-22T00:00:00Z'", sortKey: UPDATED_AT) { edges { node {
        id name customer { id } totalPriceSet { shopMoney { amount currencyCode } } refunds { id createdAt }
        lineItems { edges { node { id sku quantity variant { id } } } } } } } }"""
    files = []
    for engine in ("lean", "graphql-core"):
        fake.bulk_engine = engine
        done = poll(fake, run_bulk(fake, inner), "COMPLETED")[-1]
        files.append(download(done["url"]))
    assert files[0] == files[1]  # the bulk executor agrees with graphql-core byte for byte
    objects = [json.loads(line) for line in files[0].decode().splitlines()]
    orders = [o for o in objects if "__parentId" not in o]
    assert orders and all(set(o) == {"id", "name", "customer", "totalPriceSet", "refunds"} for o in orders)
    assert all(set(o) == {"id", "sku", "quantity", "variant", "__parentId"} for o in objects if "__parentId" in o)
    assert any(o["refunds"] for o in orders)  # plain lists stay inline


def test_bulk_queries_are_checked_as_shopify_checks_them(fake: FakeShopify) -> None:
    def refused(inner: str) -> list[str]:
        result = data_of(fake, RUN, {"q": inner})["bulkOperationRunQuery"]
        assert result["bulkOperation"] is None
        assert all(e["field"] == ["query"] and e["code"] == "INVALID" for e in result["userErrors"])
        return [e["message"] for e in result["userErrors"]]

    three_nested = """{ products { edges { node { id variants { edges { node { id inventoryItem { id
        inventoryLevels { edges { node { id location { id inventoryLevels { edges { node { id } } } } } } }
        } } } } } } } }"""
    assert refused(three_nested) == ["Bulk queries cannot contain connections with a nesting depth greater than 2."]
    two_nested = three_nested.replace("location { id inventoryLevels { edges { node { id } } } }", "location { id }")
    assert data_of(fake, RUN, {"q": two_nested})["bulkOperationRunQuery"]["userErrors"] == []
    assert refused("{ orders { edges { node { id refunds { id refundLineItems { edges { node { id } } } } } } } }") == [
        "Queries that contain a connection field within a list field are not currently supported."]
    assert refused('{ node(id: "gid://shopify/Product/1") { id } }')[0] == \
        "Bulk queries cannot contain a top level `node` field."
    assert refused("{ shop { id } }") == ["Bulk queries must contain at least one connection."]
    assert "Selecting via 'nodes' is not supported" in refused("{ products { nodes { id } } }")[0]
    assert "must select the 'id' field" in refused(
        "{ products { edges { node { title variants { edges { node { id } } } } } } }")[0]
    six = "{ products { edges { node { id " + " ".join(
        f"v{n}: variants {{ edges {{ node {{ id }} }} }}" for n in range(5)) + " } } } }"
    assert refused(six) == ["Bulk queries cannot contain more than 5 connections."]
    assert refused("{ products { edges { node { id inventoryManagement } } } }") == [
        "Invalid bulk query: Field 'inventoryManagement' doesn't exist on type 'Product'"]


def test_at_most_five_bulk_operations_run_at_once(fresh) -> None:
    fake = fresh()
    running = [run_bulk(fake, PRODUCTS) for _ in range(5)]
    refused = data_of(fake, RUN, {"q": PRODUCTS})["bulkOperationRunQuery"]
    assert refused["bulkOperation"] is None
    assert [e["code"] for e in refused["userErrors"]] == ["LIMIT_REACHED"]
    poll(fake, running[0], "COMPLETED")  # one ends: its slot is free again
    run_bulk(fake, PRODUCTS)


def test_a_failed_bulk_operation_offers_partial_data(fresh) -> None:
    fake = fresh()
    fake.bulk_script = ["RUNNING", "FAILED"]
    states = poll(fake, run_bulk(fake, PRODUCTS), "FAILED")
    failed = states[-1]
    assert [s["status"] for s in states] == ["RUNNING", "FAILED"]
    assert failed["errorCode"] == "INTERNAL_SERVER_ERROR" and failed["url"] is None
    lines = download(failed["partialDataUrl"]).decode().splitlines()
    assert 0 < len(lines) == int(failed["objectCount"]) and all(json.loads(line) for line in lines)
    assert fake.bulk_script is None  # the script was for that operation only
    assert poll(fake, run_bulk(fake, PRODUCTS), "COMPLETED")[-1]["url"]


def test_a_truncated_bulk_file_stops_mid_line(fresh) -> None:
    fake = fresh()
    fake.truncate_bulk = True
    done = poll(fake, run_bulk(fake, PRODUCTS), "COMPLETED")[-1]
    body = download(done["url"])
    assert len(body) < int(done["fileSize"]) and not body.endswith(b"\n")
    *complete, cut = body.decode().split("\n")
    assert len(complete) < int(done["objectCount"]) and all(json.loads(line) for line in complete)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut)


def test_stop_closes_the_port_and_removes_the_files(shop: DemoShop) -> None:
    fake = FakeShopify(shop)
    done = poll(fake, run_bulk(fake, PRODUCTS), "COMPLETED")[-1]
    files = list(fake._tmp.iterdir())
    assert files and done["url"]
    fake.stop()
    assert not fake._tmp.exists()
    with pytest.raises(urllib.error.URLError):
        download(done["url"])
