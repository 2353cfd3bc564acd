"""Shopify lines -> raw contract tables, column by column (Arrow compute, no Python per value).

A "line" is what a bulk operation's JSONL holds: one node without its nested connections, and
a child node carrying `__parentId`. Bulk results are parsed into lines by Arrow's JSON reader;
pages are flattened into the same lines (`flatten`), so both paths convert through this one
module. `LINES` is each document's line schema: the union of its parent's and children's
selected fields, as the API sends them (strings, numbers, booleans, nested objects).

Children are attached to their parent by `__parentId`, never by position; what a child needs of
its parent is kept in `Parents`, never the parent's record: an order's `updatedAt` in 16 bytes
(a line item may come anywhere in the file), a refund's order and time until its line items
are read. A child whose parent has not arrived yet waits.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
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
GID_PREFIX = "gid://shopify/"


# The fields only a document's child lines carry (its nested connections' nodes).
CHILD_FIELDS = {
    "orders": ("sku", "title", "quantity", "variant", "product", "originalUnitPriceSet",
               "totalDiscountSet", "subtotalSet", "lineItem"),
    "locations": ("item", "quantities"),
}
SHARED_FIELDS = ("id", PARENT, "updatedAt")


def _where(lines: pa.Table, mask: Any, count: int) -> pa.Table:
    """`lines.filter(mask)`, knowing `count` rows match: no copy when all or none do."""
    if count == lines.num_rows:
        return lines
    return lines.slice(0, 0) if not count else lines.filter(mask)


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


UPDATED_AT = pa.timestamp("us", tz="UTC")
NO_TIME = np.iinfo(np.int64).min  # an order without updatedAt


class OrderTimes:
    """Order number -> its `updatedAt`, for every order of the read (a line item may come
    anywhere in the file): sorted int64 runs merged as they grow (a log-structured merge),
    16 bytes an order instead of two Python strings, looked up a block at a time."""

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (numbers, µs since epoch)

    def add(self, numbers: np.ndarray, updated: np.ndarray) -> None:
        run = _sorted_run(numbers, updated)
        while self._runs and len(self._runs[-1][0]) <= len(run[0]):
            older = self._runs.pop()
            run = _sorted_run(np.concatenate([older[0], run[0]]), np.concatenate([older[1], run[1]]))
        self._runs.append(run)

    def find(self, numbers: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """Which orders are known, and their `updatedAt` (null where unknown)."""
        found, updated = np.zeros(len(numbers), bool), np.zeros(len(numbers), np.int64)
        for known, times in (run for run in self._runs if len(run[0])):
            at = np.minimum(np.searchsorted(known, numbers), len(known) - 1)
            hit = known[at] == numbers
            found |= hit
            updated[hit] = times[at[hit]]
        missing = ~found | (updated == NO_TIME)
        return found, pa.array(updated, pa.int64(), mask=missing).cast(UPDATED_AT)


def _sorted_run(numbers: np.ndarray, updated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(numbers, kind="stable")
    return numbers[order], updated[order]


class Parents:
    """What children need of their parents, by the parent's GID."""

    def __init__(self) -> None:
        self.orders = OrderTimes()
        # refund GID -> (order GID, createdAt, the order's updatedAt), until its lines are read
        self.refunds: dict[str, tuple[str, str | None, str | None]] = {}
        self.unread_refunds: list[str] = []  # refunds whose line items are still to be read

    def add_orders(self, ids: pa.Array, updated: pa.Array, refunds: pa.Array) -> None:
        times = parse_strings(_array(updated), UPDATED_AT, "orders.updated_at").cast(pa.int64())
        self.orders.add(gid(ids).to_numpy(zero_copy_only=False),
                        pc.fill_null(times, NO_TIME).to_numpy(zero_copy_only=False))
        ids_, updated_ = ids.to_pylist(), updated.to_pylist()
        for order, order_updated, refund_list in zip(ids_, updated_, refunds.to_pylist()):
            for refund in refund_list or []:
                self.refunds[refund["id"]] = (order, refund.get("createdAt"), order_updated)
                self.unread_refunds.append(refund["id"])

    def forget_refunds(self, ids: list[str]) -> None:
        """Refunds whose line items were read: nothing waits for them any more."""
        for refund in ids:
            self.refunds.pop(refund, None)


class Converter:
    """One document's lines -> contract chunks; children wait for their parents."""

    def __init__(self, doc: Document):
        self.doc, self.parents = doc, Parents()
        self.waiting: list[pa.Table] = []
        # Parents and children are split on the fields each carries: filtering the few
        # columns a side reads is much cheaper than filtering the union's nested ones.
        names, child_only = LINES[doc.name].names, CHILD_FIELDS.get(doc.name, ())
        self._parent_fields = [n for n in names if n not in child_only]
        self._child_fields = [n for n in names if n in child_only or n in SHARED_FIELDS]

    def convert(self, lines: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        is_child = pc.is_valid(lines[PARENT])
        child_count = pc.sum(is_child).as_py() or 0
        if child_count < lines.num_rows:
            yield from self._parents(_where(lines.select(self._parent_fields), pc.invert(is_child),
                                            lines.num_rows - child_count))
        children = _where(lines.select(self._child_fields), is_child, child_count)
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
        for kind, table, columns in (("Order", "order_line_items", self._line_items),
                                     ("Refund", "order_refund_line_items", self._refund_lines)):
            of_kind = pc.starts_with(lines[PARENT], f"{GID_PREFIX}{kind}/")
            rows = _where(lines, of_kind, pc.sum(of_kind).as_py() or 0)
            if rows.num_rows:
                ready, values = columns(rows)
                if not pc.all(ready).as_py():
                    self.waiting.append(rows.filter(pc.invert(ready)))
                    rows, values = rows.filter(ready), {k: v.filter(ready) for k, v in values.items()}
                if rows.num_rows:
                    yield table, _contract(table, values)

    def _line_items(self, lines: pa.Table) -> tuple[pa.Array, dict[str, Any]]:
        order_ids = gid(lines[PARENT])
        found, updated = self.parents.orders.find(order_ids.to_numpy(zero_copy_only=False))
        return pa.array(found), {
            "id": gid(lines["id"]), "order_id": order_ids,
            "product_id": gid(_field(lines["product"], "id")),
            "variant_id": gid(_field(lines["variant"], "id")), "sku": lines["sku"],
            "title": lines["title"], "quantity": lines["quantity"],
            "price": _money(lines["originalUnitPriceSet"]),
            "total_discount": _money(lines["totalDiscountSet"]),
            "order_updated_at": updated}

    def _refund_lines(self, lines: pa.Table) -> tuple[pa.Array, dict[str, Any]]:
        found = [self.parents.refunds.get(p) for p in lines[PARENT].to_pylist()]
        orders = pa.array([f[0] if f else None for f in found], pa.string())
        updated = pa.array([f[2] if f else None for f in found], pa.string())
        return pc.is_valid(orders), {
            "id": gid(lines["id"]), "refund_id": gid(lines[PARENT]), "order_id": gid(orders),
            "line_item_id": gid(_field(lines["lineItem"], "id")), "quantity": lines["quantity"],
            "subtotal": _money(lines["subtotalSet"]),
            "created_at": pa.array([f[1] if f else None for f in found], pa.string()),
            "order_updated_at": updated}


def gid(values: Any) -> pa.Array:
    """Numeric ids of GIDs (`gid://shopify/Order/123` -> 123); anything else is an error. A
    column holds one type's GIDs: its prefix is cut off and the rest must be digits (string
    kernels, several times faster than a regular expression per value)."""
    values = _array(values)
    first = next((v for v in values.drop_null().slice(0, 1).to_pylist()), None)
    if first is None:
        return pa.nulls(len(values), pa.int64())
    prefix = first[:first.rfind("/") + 1]
    numbers = pc.utf8_slice_codeunits(values, len(prefix))
    well_formed = pc.and_(pc.starts_with(values, prefix), pc.ascii_is_decimal(numbers))
    if not prefix.startswith(GID_PREFIX) or not pc.all(well_formed).as_py():
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
