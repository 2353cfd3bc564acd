"""The GraphQL documents the connector runs, one per top-level connection.

Minimisation starts here: no document selects a shopper's name, email, phone, address, IP or
payment details; the only shopper field is `customer { id }` (pseudonymised on arrival) and the
customer's own order statistics. Each document reads one top-level connection, filtered on
`updated_at` unless it is small and read whole; nested connections carry `pageInfo` so the
connector follows them to the end (a long line-item list is never cut at one page).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

PAGE_INFO = "pageInfo { hasNextPage endCursor }"


@dataclass(frozen=True)
class Nested:
    """A connection inside a node: `field` on the node itself, or on each element of the
    node's list `inside` (an order's refunds); the rest of it is read with `root(id:)`.
    Bulk queries cannot hold a connection inside a list: there the list's elements are read
    with the node, and their connections afterwards (`owners`)."""
    field: str
    node: str  # selection of the connection's nodes
    root: str  # single-object query root of the connection's owner, e.g. `order`
    inside: str | None = None
    owner_type: str | None = None  # the list elements' type, for `nodes(ids:)`

    def owners(self) -> str:
        """First pages of this connection for many owners at once."""
        return (f"query Owners($ids: [ID!]!, $first: Int!) {{ nodes(ids: $ids) {{ "
                f"... on {self.owner_type} {{ id {self.field}(first: $first) {{ {PAGE_INFO} "
                f"edges {{ node {{ {self.node} }} }} }} }} }} }}")


@dataclass(frozen=True)
class Document:
    name: str
    root: str  # top-level connection
    node: str  # selection of each node, without its nested connections
    tables: tuple[str, ...]  # the contract tables its rows fill (shop dataset)
    cursor_table: str  # whose incremental cursor bounds the `updated_at` filter
    sort_key: str | None = "UPDATED_AT"
    filtered: bool = True  # False: small, read whole (its rows still pass dlt's incremental)
    args: str = ""  # fixed extra arguments of the top-level connection
    nested: tuple[Nested, ...] = ()
    # The Admin API access scopes the document needs (an install asks for no more than the
    # tenant's data scope reads), and its selection of the shopper, if any (dropped, with
    # read_customers, when the tenant keeps nothing per shopper).
    access_scopes: tuple[str, ...] = ()
    shopper: str = ""

    def without_shopper(self) -> Document:
        """The document without its shopper selection (a tenant without shopper-level scope)."""
        return replace(self, shopper="")

    def paged(self) -> str:
        """One page, nested connections at `$nested` nodes a page."""
        args = ", ".join(a for a in ("first: $first, after: $after",
                                      "query: $query" if self.filtered else "",
                                      f"sortKey: {self.sort_key}" if self.sort_key else "",
                                      self.args) if a)
        variables = ", ".join(v for v in ("$first: Int!, $after: String",
                                           "$query: String" if self.filtered else "",
                                           "$nested: Int!" if self.nested else "") if v)
        return (f"query {self.name.title().replace('_', '')}({variables}) {{ "
                f"{self.root}({args}) {{ "
                f"{PAGE_INFO} edges {{ node {{ {self._node('(first: $nested)', PAGE_INFO)} }} }} }} }}")

    def bulk(self, query: str | None) -> str:
        """The whole connection as one bulk operation (no paging arguments: Shopify ignores
        them in bulk queries, and each nested node becomes its own JSONL line)."""
        args = ", ".join(a for a in (f"query: {_quote(query)}" if self.filtered and query else "",
                                      f"sortKey: {self.sort_key}" if self.sort_key else "",
                                      self.args) if a)
        return (f"{{ {self.root}{f'({args})' if args else ''} {{ edges {{ node {{ "
                f"{self._node('', '', bulk=True)} }} }} }} }}")

    def rest_of(self, nested: Nested) -> str:
        """The remaining pages of one nested connection of one owner."""
        return (f"query More($id: ID!, $first: Int!, $after: String) {{ {nested.root}(id: $id) {{ "
                f"{nested.field}(first: $first, after: $after) {{ {PAGE_INFO} "
                f"edges {{ node {{ {nested.node} }} }} }} }} }}")

    def _node(self, page_args: str, page_info: str, bulk: bool = False) -> str:
        parts = [self.node, self.shopper] if self.shopper else [self.node]
        for n in self.nested:
            if n.inside and bulk:
                parts.append(f"{n.inside} {{ id createdAt }}")
                continue
            connection = f"{n.field}{page_args} {{ {page_info}{' ' if page_info else ''}edges {{ node {{ {n.node} }} }} }}"
            parts.append(f"{n.inside} {{ id createdAt {connection} }}" if n.inside else connection)
        return " ".join(parts)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


MONEY = "shopMoney { amount }"
SHOPPER_SCOPE = "read_customers"  # the customer object, and `Order.customer`

PRODUCTS = Document(
    "products", "products",
    "id title handle productType vendor status createdAt updatedAt publishedAt",
    ("products",), "products", access_scopes=("read_products",))

VARIANTS = Document(
    "variants", "productVariants",
    "id title sku price compareAtPrice inventoryPolicy inventoryQuantity createdAt updatedAt "
    "product { id } inventoryItem { id tracked }",
    ("product_variants",), "product_variants", sort_key="ID",
    access_scopes=("read_products", "read_inventory"))  # inventoryItem: read_inventory

INVENTORY_ITEMS = Document(
    "inventory_items", "inventoryItems",
    "id sku tracked unitCost { amount } createdAt updatedAt",
    ("inventory_items",), "inventory_items", sort_key=None, access_scopes=("read_inventory",))

# Stock moves change InventoryLevel.updatedAt, not necessarily their item's: levels are read
# through their locations, whole (a shop has variants x locations of them), every run.
LOCATIONS = Document(
    "locations", "locations",
    "id name isActive address { countryCode } createdAt updatedAt",
    ("locations", "inventory_levels"), "locations", sort_key=None, filtered=False,
    args="includeInactive: true", access_scopes=("read_locations", "read_inventory"),
    nested=(Nested("inventoryLevels",
                   'updatedAt item { id } quantities(names: ["available"]) { name quantity }',
                   "location"),))

ORDERS = Document(
    "orders", "orders",
    "id name number createdAt processedAt updatedAt cancelledAt cancelReason closedAt "
    "displayFinancialStatus displayFulfillmentStatus currencyCode test sourceName discountCodes "
    f"totalPriceSet {{ {MONEY} }} subtotalPriceSet {{ {MONEY} }} "
    f"totalDiscountsSet {{ {MONEY} }} totalTaxSet {{ {MONEY} }} totalShippingPriceSet {{ {MONEY} }}",
    ("orders", "order_line_items", "order_refund_line_items"), "orders",
    access_scopes=("read_orders",), shopper="customer { id }",
    nested=(Nested("lineItems",
                   f"id sku title quantity variant {{ id }} product {{ id }} "
                   f"originalUnitPriceSet {{ {MONEY} }} totalDiscountSet {{ {MONEY} }}", "order"),
            Nested("refundLineItems",
                   f"id quantity subtotalSet {{ {MONEY} }} lineItem {{ id }}", "refund",
                   inside="refunds", owner_type="Refund")))

# Level 1 of Shopify's protected customer data: the customer's id and order statistics only.
CUSTOMERS = Document(
    "customers", "customers",
    "id createdAt updatedAt numberOfOrders amountSpent { amount currencyCode } state",
    ("customers",), "customers", access_scopes=(SHOPPER_SCOPE,))

DOCUMENTS = (PRODUCTS, VARIANTS, INVENTORY_ITEMS, LOCATIONS, ORDERS, CUSTOMERS)
BY_TABLE = {table: doc for doc in DOCUMENTS for table in doc.tables}

# Admin API scopes in the order an install asks for them.
SCOPE_ORDER = ("read_products", "read_inventory", "read_locations", "read_orders", SHOPPER_SCOPE)


def access_scopes(tables: Iterable[str], *, shopper_level: bool = True) -> tuple[str, ...]:
    """The access scopes the documents filling `tables` need: read_customers only when the
    tenant keeps data per shopper (then the orders' customer is selected too)."""
    documents = {BY_TABLE[t] for t in tables if t in BY_TABLE}
    needed = {scope for doc in documents for scope in doc.access_scopes}
    if shopper_level and any(doc.shopper for doc in documents):
        needed.add(SHOPPER_SCOPE)
    if not shopper_level:
        needed.discard(SHOPPER_SCOPE)
    return tuple(scope for scope in SCOPE_ORDER if scope in needed)
