"""Shopify lines -> raw contract tables, column by column (Arrow compute, no Python per value).

A "line" is what a bulk operation's JSONL holds: one node without its nested connections, and
a child node carrying `__parentId`. Bulk results are parsed into lines by Arrow's JSON reader;
pages are flattened into the same lines (`flatten`), so both paths convert through this one
module. `LINES` is each document's line schema: the union of its parent's and children's
selected fields, as the API sends them (strings, numbers, booleans, nested objects).

Children are attached to their parent by `__parentId`, never by position; what a child needs of
its parent (an order's `updatedAt`, a refund's order and time) is kept in `Parents`, one small
tuple per parent, never the parent's record. A child whose parent has not arrived yet waits.
"""

from __future__ import annotations

from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.sources import contract
from cleargro_pipeline.sources.shopify.documents import Document
from cleargro_pipeline.sources.shopify_json import input_schema, parse_strings

S = pa.string()
MONEY = contract.MONEY
REF = pa.struct([("id", S)])
MONEY_BAG = pa.struct([("shopMoney", pa.struct([("amount", S)]))])
PARENT = "__parentId"


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([("id", S), (PARENT, S), *fields])


_ORDER_MONEY = ("totalPriceSet", "subtotalPriceSet", "totalDiscountsSet", "totalTaxSet",
                "totalShippingPriceSet")
LINES: dict[str, pa.Schema] = {
    "products": _schema(("title", S), ("handle", S), ("productType", S), ("vendor", S),
                        ("status", S), ("createdAt", S), ("updatedAt", S), ("publishedAt", S)),
    "variants": _schema(("title", S), ("sku", S), ("price", S), ("compareAtPrice", S),
                        ("inventoryPolicy", S), ("inventoryQuantity", pa.int64()),
                        ("createdAt", S), ("updatedAt", S), ("product", REF),
                        ("inventoryItem", pa.struct([("id", S), ("tracked", pa.bool_())]))),
    "inventory_items": _schema(("sku", S), ("tracked", pa.bool_()),
                               ("unitCost", pa.struct([("amount", S)])), ("createdAt", S),
                               ("updatedAt", S)),
    "locations": _schema(("name", S), ("isActive", pa.bool_()),
                         ("address", pa.struct([("countryCode", S)])), ("createdAt", S),
                         ("updatedAt", S), ("item", REF),
                         ("quantities", pa.list_(pa.struct([("name", S), ("quantity", pa.int64())])))),
    "orders": _schema(
        ("name", S), ("number", pa.int64()), ("createdAt", S), ("processedAt", S), ("updatedAt", S),
        ("cancelledAt", S), ("cancelReason", S), ("closedAt", S), ("displayFinancialStatus", S),
        ("displayFulfillmentStatus", S), ("currencyCode", S), ("test", pa.bool_()),
        ("sourceName", S), ("discountCodes", pa.list_(S)), ("customer", REF),
        *((bag, MONEY_BAG) for bag in _ORDER_MONEY),
        ("refunds", pa.list_(pa.struct([("id", S), ("createdAt", S)]))),
        # line items
        ("sku", S), ("title", S), ("quantity", pa.int64()), ("variant", REF), ("product", REF),
        ("originalUnitPriceSet", MONEY_BAG), ("totalDiscountSet", MONEY_BAG),
        # refund line items
        ("subtotalSet", MONEY_BAG), ("lineItem", REF)),
    "customers": _schema(("createdAt", S), ("updatedAt", S), ("numberOfOrders", S),
                         ("amountSpent", pa.struct([("amount", S), ("currencyCode", S)])),
                         ("state", S)),
}
FULFILLMENT = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial", "UNFULFILLED": None}
_GID = r"^gid://shopify/(?P<type>\w+)/(?P<n>\d+)"


class ShapeError(CleargroError):
    """Lines that are not the shape the document asked for."""


def flatten(doc: Document, node: dict) -> Iterator[dict]:
    """A paged node (its nested connections inside it) as bulk lines."""
    parent = {k: v for k, v in node.items()
              if k not in {n.field for n in doc.nested if not n.inside}}
    for nested in doc.nested:
        owners = (node.get(nested.inside) or []) if nested.inside else [node]
        for owner in owners:
            for edge in (owner.get(nested.field) or {}).get("edges") or []:
                yield {**(edge.get("node") or {}), PARENT: owner.get("id")}
        if nested.inside:
            parent[nested.inside] = [{"id": o.get("id"), "createdAt": o.get("createdAt")}
                                     for o in owners]
    yield parent


def lines_table(doc: Document, lines: list[dict]) -> pa.Table:
    try:
        return pa.Table.from_pylist(lines, schema=LINES[doc.name])
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        raise ShapeError(f"{doc.name}: a node is not the shape the document asked for") from None


class Parents:
    """What children need of their parents, by the parent's GID."""

    def __init__(self) -> None:
        self.orders: dict[str, str | None] = {}  # order GID -> updatedAt
        self.refunds: dict[str, tuple[str, str | None]] = {}  # refund GID -> (order GID, createdAt)

    def add_orders(self, ids: pa.Array, updated: pa.Array, refunds: pa.Array) -> None:
        self.orders.update(zip(ids.to_pylist(), updated.to_pylist()))
        for order, refund_list in zip(ids.to_pylist(), refunds.to_pylist()):
            for refund in refund_list or []:
                self.refunds[refund["id"]] = (order, refund.get("createdAt"))


class Converter:
    """One document's lines -> contract chunks; children wait for their parents."""

    def __init__(self, doc: Document):
        self.doc, self.parents = doc, Parents()
        self.waiting: list[pa.Table] = []

    def convert(self, lines: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        is_child = pc.is_valid(lines[PARENT])
        parents = lines.filter(pc.invert(is_child))
        if parents.num_rows:
            yield from self._parents(parents)
        children = lines.filter(is_child)
        if self.waiting:
            children = pa.concat_tables([*self.waiting, children])
            self.waiting = []
        if children.num_rows:
            yield from self._children(children)

    def finish(self) -> int:
        """Children still waiting for a parent that never came."""
        return sum(t.num_rows for t in self.waiting)

    def _parents(self, lines: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        name = self.doc.name
        if name == "orders":
            self.parents.add_orders(lines["id"], lines["updatedAt"], lines["refunds"])
        yield PARENT_TABLE[name], _contract(PARENT_TABLE[name], PARENT_COLUMNS[name](lines))

    def _children(self, lines: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        if self.doc.name == "locations":
            yield "inventory_levels", _contract("inventory_levels", _levels(lines))
            return
        if self.doc.name != "orders":
            raise ShapeError(f"{self.doc.name}: a line names a parent, but the document has no "
                             "nested connection")
        kinds = pc.struct_field(pc.extract_regex(lines[PARENT], _GID), "type")
        for kind, table, columns in (("Order", "order_line_items", self._line_items),
                                     ("Refund", "order_refund_line_items", self._refund_lines)):
            rows = lines.filter(pc.fill_null(pc.equal(kinds, kind), False))
            if rows.num_rows:
                ready, values = columns(rows)
                if not pc.all(ready).as_py():
                    self.waiting.append(rows.filter(pc.invert(ready)))
                    rows, values = rows.filter(ready), {k: v.filter(ready) for k, v in values.items()}
                if rows.num_rows:
                    yield table, _contract(table, values)

    def _line_items(self, lines: pa.Table) -> tuple[pa.Array, dict[str, Any]]:
        orders = self.parents.orders
        parents = lines[PARENT].to_pylist()
        ready = pa.array([p in orders for p in parents])
        updated = pa.array([orders.get(p) for p in parents], pa.string())
        return ready, {
            "id": gid(lines["id"]), "order_id": gid(lines[PARENT]),
            "product_id": gid(_field(lines["product"], "id")),
            "variant_id": gid(_field(lines["variant"], "id")), "sku": lines["sku"],
            "title": lines["title"], "quantity": lines["quantity"],
            "price": _money(lines["originalUnitPriceSet"]),
            "total_discount": _money(lines["totalDiscountSet"]),
            "order_updated_at": updated}

    def _refund_lines(self, lines: pa.Table) -> tuple[pa.Array, dict[str, Any]]:
        found = [self.parents.refunds.get(p) for p in lines[PARENT].to_pylist()]
        orders = pa.array([f[0] if f else None for f in found], pa.string())
        updated = pa.array([self.parents.orders.get(f[0]) if f else None for f in found], pa.string())
        return pc.is_valid(orders), {
            "id": gid(lines["id"]), "refund_id": gid(lines[PARENT]), "order_id": gid(orders),
            "line_item_id": gid(_field(lines["lineItem"], "id")), "quantity": lines["quantity"],
            "subtotal": _money(lines["subtotalSet"]),
            "created_at": pa.array([f[1] if f else None for f in found], pa.string()),
            "order_updated_at": updated}


def gid(values: Any) -> pa.Array:
    """Numeric ids of GIDs (`gid://shopify/Order/123` -> 123); anything else is an error."""
    values = _array(values)
    numbers = pc.struct_field(pc.extract_regex(values, _GID), "n")
    if numbers.null_count != values.null_count:
        raise ShapeError("a value that should be a Shopify GID is not one")
    return numbers.cast(pa.int64())


def _array(values: Any) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _field(values: Any, *path: str) -> pa.Array:
    return pc.struct_field(_array(values), list(path))


def _money(bag: Any) -> pa.Array:
    return _field(bag, "shopMoney", "amount")


def _lower(values: Any) -> pa.Array:
    return pc.utf8_lower(_array(values))


def _products(t: pa.Table) -> dict[str, Any]:
    return {"id": gid(t["id"]), "title": t["title"], "handle": t["handle"],
            "product_type": t["productType"], "vendor": t["vendor"], "status": _lower(t["status"]),
            "created_at": t["createdAt"], "updated_at": t["updatedAt"], "published_at": t["publishedAt"]}


def _variants(t: pa.Table) -> dict[str, Any]:
    tracked = _field(t["inventoryItem"], "tracked")
    return {"id": gid(t["id"]), "product_id": gid(_field(t["product"], "id")), "title": t["title"],
            "sku": t["sku"], "price": t["price"], "compare_at_price": t["compareAtPrice"],
            "inventory_policy": _lower(t["inventoryPolicy"]),
            # REST's inventory_management: "shopify" when Shopify tracks the item's stock.
            "inventory_management": pc.if_else(pc.fill_null(tracked, False), "shopify", None),
            "inventory_item_id": gid(_field(t["inventoryItem"], "id")),
            "inventory_quantity": t["inventoryQuantity"], "created_at": t["createdAt"],
            "updated_at": t["updatedAt"]}


def _inventory_items(t: pa.Table) -> dict[str, Any]:
    return {"id": gid(t["id"]), "sku": t["sku"], "cost": _field(t["unitCost"], "amount"),
            "tracked": t["tracked"], "created_at": t["createdAt"], "updated_at": t["updatedAt"]}


def _locations(t: pa.Table) -> dict[str, Any]:
    return {"id": gid(t["id"]), "name": t["name"], "country_code": _field(t["address"], "countryCode"),
            "active": t["isActive"], "created_at": t["createdAt"], "updated_at": t["updatedAt"]}


def _levels(t: pa.Table) -> dict[str, Any]:
    quantities = _array(t["quantities"])
    flat = pc.list_flatten(quantities)
    available = pc.equal(pc.struct_field(flat, "name"), "available")
    amounts: list[int | None] = [None] * t.num_rows
    for row, quantity in zip(pc.list_parent_indices(quantities).filter(available).to_pylist(),
                             pc.struct_field(flat, "quantity").filter(available).to_pylist()):
        amounts[row] = quantity
    return {"inventory_item_id": gid(_field(t["item"], "id")), "location_id": gid(t[PARENT]),
            "available": pa.array(amounts, pa.int64()), "updated_at": t["updatedAt"]}


def _orders(t: pa.Table) -> dict[str, Any]:
    subtotal, discounts = _money(t["subtotalPriceSet"]), _money(t["totalDiscountsSet"])
    fulfillment = _lower(t["displayFulfillmentStatus"])
    for shopify, rest in FULFILLMENT.items():
        fulfillment = pc.if_else(pc.equal(fulfillment, shopify.lower()),
                                 pa.scalar(rest, pa.string()), fulfillment)
    joined = pc.binary_join(_array(t["discountCodes"]), ",")
    return {
        "id": gid(t["id"]), "name": t["name"], "order_number": t["number"],
        "created_at": t["createdAt"], "processed_at": t["processedAt"], "updated_at": t["updatedAt"],
        "cancelled_at": t["cancelledAt"], "cancel_reason": _lower(t["cancelReason"]),
        "closed_at": t["closedAt"], "financial_status": _lower(t["displayFinancialStatus"]),
        "fulfillment_status": fulfillment,
        "currency": t["currencyCode"], "total_price": _money(t["totalPriceSet"]),
        "subtotal_price": subtotal, "total_discounts": discounts,
        "total_tax": _money(t["totalTaxSet"]),
        # REST's total_line_items_price: the line items before discounts.
        "total_line_items_price": pc.add(parse_strings(subtotal, MONEY, "orders.subtotal_price"),
                                         parse_strings(discounts, MONEY, "orders.total_discounts")),
        "total_shipping_price": _money(t["totalShippingPriceSet"]),
        "test": t["test"], "source_name": t["sourceName"],
        "discount_codes": pc.if_else(pc.equal(joined, ""), None, joined),
        "customer_id": gid(_field(t["customer"], "id"))}


def _customers(t: pa.Table) -> dict[str, Any]:
    return {"id": gid(t["id"]), "created_at": t["createdAt"], "updated_at": t["updatedAt"],
            "orders_count": t["numberOfOrders"], "total_spent": _field(t["amountSpent"], "amount"),
            "state": _lower(t["state"]), "currency": _field(t["amountSpent"], "currencyCode")}


PARENT_TABLE = {"products": "products", "variants": "product_variants",
                "inventory_items": "inventory_items", "locations": "locations",
                "orders": "orders", "customers": "customers"}
PARENT_COLUMNS = {"products": _products, "variants": _variants,
                  "inventory_items": _inventory_items, "locations": _locations,
                  "orders": _orders, "customers": _customers}


def _contract(table: str, values: dict[str, Any]) -> pa.Table:
    """Columns named as the contract -> its input schema (raw shopper ids), each value parsed
    as its column's type; a value that does not parse raises FieldError naming the column."""
    schema = input_schema(contract.table(contract.SHOP, table))
    arrays = []
    for field in schema:
        values_ = _array(values[field.name])
        if pa.types.is_string(values_.type) and not pa.types.is_string(field.type):
            arrays.append(parse_strings(values_, field.type, f"{table}.{field.name}"))
        else:
            arrays.append(values_.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
