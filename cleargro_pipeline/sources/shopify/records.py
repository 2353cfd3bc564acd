"""GraphQL nodes -> rows of the raw contract (`raw_shop.*`), and rows -> Arrow chunks.

Numeric ids are taken from the GIDs (`gid://shopify/Order/123` -> 123), enums become the
lower-case values the REST API and the contract use, money is the shop-currency amount.
Shopper ids stay raw here (`customer_id`, a customer's `id`); `minimise` pseudonymises them.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator

import pyarrow as pa

from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.sources.shopify_json import build_shop_table

CHUNK_ROWS = 5_000
_GID = re.compile(r"^gid://shopify/(\w+)/(\d+)(\?.*)?$")
FULFILLMENT = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial", "UNFULFILLED": None}


class ShapeError(CleargroError):
    """A node is not the shape the document asked for."""


def gid_type(value: Any) -> str | None:
    match = _GID.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def gid(value: Any) -> int | None:
    if value is None:
        return None
    match = _GID.match(value) if isinstance(value, str) else None
    if not match:
        raise ShapeError(f"{str(value)[:60]!r} is not a Shopify GID")
    return int(match.group(2))


def _id_of(obj: Any) -> int | None:
    return gid(obj.get("id")) if isinstance(obj, dict) else None


def _money(bag: Any) -> str | None:
    shop = bag.get("shopMoney") if isinstance(bag, dict) else None
    return shop.get("amount") if isinstance(shop, dict) else None


def _lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def product(node: dict) -> dict:
    return {"id": gid(node.get("id")), "title": node.get("title"), "handle": node.get("handle"),
            "product_type": node.get("productType"), "vendor": node.get("vendor"),
            "status": _lower(node.get("status")), "created_at": node.get("createdAt"),
            "updated_at": node.get("updatedAt"), "published_at": node.get("publishedAt")}


def variant(node: dict) -> dict:
    item = node.get("inventoryItem") or {}
    return {"id": gid(node.get("id")), "product_id": _id_of(node.get("product")),
            "title": node.get("title"), "sku": node.get("sku"), "price": node.get("price"),
            "compare_at_price": node.get("compareAtPrice"),
            "inventory_policy": _lower(node.get("inventoryPolicy")),
            # REST's inventory_management: "shopify" when Shopify tracks the item's stock.
            "inventory_management": "shopify" if item.get("tracked") else None,
            "inventory_item_id": _id_of(item), "inventory_quantity": node.get("inventoryQuantity"),
            "created_at": node.get("createdAt"), "updated_at": node.get("updatedAt")}


def inventory_item(node: dict) -> dict:
    return {"id": gid(node.get("id")), "sku": node.get("sku"),
            "cost": (node.get("unitCost") or {}).get("amount"), "tracked": node.get("tracked"),
            "created_at": node.get("createdAt"), "updated_at": node.get("updatedAt")}


def location(node: dict) -> dict:
    return {"id": gid(node.get("id")), "name": node.get("name"),
            "country_code": (node.get("address") or {}).get("countryCode"),
            "active": node.get("isActive"), "created_at": node.get("createdAt"),
            "updated_at": node.get("updatedAt")}


def inventory_level(node: dict, location_id: int | None) -> dict:
    available = next((q.get("quantity") for q in node.get("quantities") or []
                      if isinstance(q, dict) and q.get("name") == "available"), None)
    return {"inventory_item_id": _id_of(node.get("item")), "location_id": location_id,
            "available": available, "updated_at": node.get("updatedAt")}


def order(node: dict) -> dict:
    subtotal, discounts = _money(node.get("subtotalPriceSet")), _money(node.get("totalDiscountsSet"))
    codes = [c for c in node.get("discountCodes") or [] if isinstance(c, str) and c]
    return {"id": gid(node.get("id")), "name": node.get("name"), "order_number": node.get("number"),
            "created_at": node.get("createdAt"), "processed_at": node.get("processedAt"),
            "updated_at": node.get("updatedAt"), "cancelled_at": node.get("cancelledAt"),
            "cancel_reason": _lower(node.get("cancelReason")), "closed_at": node.get("closedAt"),
            "financial_status": _lower(node.get("displayFinancialStatus")),
            "fulfillment_status": _fulfillment(node.get("displayFulfillmentStatus")),
            "currency": node.get("currencyCode"), "total_price": _money(node.get("totalPriceSet")),
            "subtotal_price": subtotal, "total_discounts": discounts,
            "total_tax": _money(node.get("totalTaxSet")),
            # REST's total_line_items_price: the line items before discounts.
            "total_line_items_price": _sum(subtotal, discounts),
            "total_shipping_price": _money(node.get("totalShippingPriceSet")),
            "test": node.get("test"), "source_name": node.get("sourceName"),
            "discount_codes": ",".join(codes) or None,
            "customer_id": _id_of(node.get("customer"))}


def line_item(node: dict, order_id: int | None, order_updated_at: str | None) -> dict:
    return {"id": gid(node.get("id")), "order_id": order_id,
            "product_id": _id_of(node.get("product")), "variant_id": _id_of(node.get("variant")),
            "sku": node.get("sku"), "title": node.get("title"), "quantity": node.get("quantity"),
            "price": _money(node.get("originalUnitPriceSet")),
            "total_discount": _money(node.get("totalDiscountSet")),
            "order_updated_at": order_updated_at}


def refund_line_item(node: dict, refund: dict, order_id: int | None,
                     order_updated_at: str | None) -> dict:
    return {"id": gid(node.get("id")), "refund_id": _id_of(refund), "order_id": order_id,
            "line_item_id": _id_of(node.get("lineItem")), "quantity": node.get("quantity"),
            "subtotal": _money(node.get("subtotalSet")), "created_at": refund.get("createdAt"),
            "order_updated_at": order_updated_at}


def customer(node: dict) -> dict:
    spent = node.get("amountSpent") or {}
    return {"id": gid(node.get("id")), "created_at": node.get("createdAt"),
            "updated_at": node.get("updatedAt"), "orders_count": node.get("numberOfOrders"),
            "total_spent": spent.get("amount"), "state": _lower(node.get("state")),
            "currency": spent.get("currencyCode")}


def _fulfillment(value: Any) -> str | None:
    return FULFILLMENT.get(value, _lower(value)) if isinstance(value, str) else None


def _sum(*amounts: str | None) -> str | None:
    if any(a is None for a in amounts):
        return None
    try:
        return str(sum(Decimal(a) for a in amounts))
    except InvalidOperation:
        raise ShapeError("a money amount is not a decimal") from None


class Batches:
    """Rows per table, handed out as Arrow chunks of the contract's input schema."""

    def __init__(self, chunk_rows: int = CHUNK_ROWS):
        self.rows: dict[str, list[dict]] = {}
        self.chunk_rows = chunk_rows

    def add(self, table: str, row: dict) -> Iterator[tuple[str, pa.Table]]:
        rows = self.rows.setdefault(table, [])
        rows.append(row)
        if len(rows) >= self.chunk_rows:
            yield table, build_shop_table(table, rows)
            self.rows[table] = []

    def flush(self) -> Iterator[tuple[str, pa.Table]]:
        for table, rows in self.rows.items():
            if rows:
                yield table, build_shop_table(table, rows)
        self.rows = {}
