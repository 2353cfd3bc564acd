"""A local fake of Shopify's Admin GraphQL API, serving the embedded demo shop.

It speaks the wire format over real HTTP on 127.0.0.1 and executes whatever document the
client sends with graphql-core against Shopify's own Admin schema (SDL 2026-01, see
`../shared/fixtures/shopify_graphql/README.md`), so a field Shopify does not have is
refused as Shopify refuses it (`undefinedField`).

    with FakeShopify(DemoShop(size="small")) as fake:
        fake.graphql_url  # http://127.0.0.1:PORT/admin/api/2026-10/graphql.json
        fake.set_cutoff(datetime(2026, 11, 1, tzinfo=timezone.utc))  # only older rows exist
        fake.fail_next("throttled", "http429")  # scripted faults, one per request
        fake.bulk_script = ["CREATED", "RUNNING", "FAILED"]  # for the next bulk operation

Data: the shop's raw tables are kept columnar (numpy arrays and dictionary-coded strings)
and a row becomes a GraphQL object only when a query reaches it, field by field; the medium
shop (500k orders) is served without building a million dicts. Mapping contract -> GraphQL:
see `_Model`. References between objects (`variant.product`, `order.customer`, ...) always
resolve; the cutoff and the 60-day order window hide rows from connections and top-level
look-ups only.

OAuth (the app's side of Shopify's authorization code, refresh and client credentials
grants): `GET /admin/oauth/authorize` answers the consent page a merchant sees, whose "Install
app" link goes back to `redirect_uri` with `code`, `shop` (`fake.shop_domain`), `state`,
`timestamp` and their `hmac` (hex HMAC-SHA256 under `client_secret`), granting what was asked
(or `granted_scopes`); `POST /admin/oauth/access_token` (form or JSON) exchanges a code (an
expiring token with `expiring=1` or when `fake.expiring_tokens`), a refresh token (rotated;
the previous one stays valid until its replacement is used) or the client credentials (86399 s).
The GraphQL endpoint accepts the constructor's `token` and every token issued and still valid.

    fake.granted_scopes = {"read_products"}    # the merchant grants less than asked
    fake.fail_next_token("unauthorized")       # the next token request is answered 401
    fake.uninstall()                           # every issued token stops working

Bulk JSONL (`_flatten`): every node of a connection is a line of its own; a node of a nested
connection carries `"__parentId"`: the id of the node of the enclosing connection (which a
bulk query must select, as Shopify requires). Objects and lists that are not connections stay
inline. Lines are shuffled (seeded, per block of 1000 root objects) unless
`groupObjects: true`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import random
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import graphql
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
)
from graphql.execution.values import get_argument_values, get_directive_values, get_variable_values

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "shopify_graphql"
SCHEMA_PATH = FIXTURES / "admin-2026-01.schema.graphql"

MAX_QUERY_COST = 1000
MAX_PAGE = 250
MUTATION_COST = 10
BULK_ROOTS_PER_BLOCK = 1000  # root objects executed (and shuffled) together in a bulk run
DEFAULT_BULK_SCRIPT = ("CREATED", "RUNNING", "COMPLETED")
BULK_STATUSES = {"CREATED", "RUNNING", "COMPLETED", "FAILED", "EXPIRED", "CANCELED", "CANCELING"}
# Bulk query operations one shop runs at once (since 2026-01; one before). A further one is
# refused with userErrors code LIMIT_REACHED until one of them ends.
BULK_RUNNING_MAX = 5
BULK_RUNNING = {"CREATED", "RUNNING", "CANCELING"}
FAULTS = {"throttled", "http429", "http500", "http503", "drop", "unauthorized"}
RATE_LIMIT_DOCS = "https://shopify.dev/api/usage/rate-limits"
UNAUTHORIZED = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
HTTP429 = {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume "
                     "uninterrupted service."}
GRAPHQL_PATH = re.compile(r"^/admin/api/([^/]+)/graphql\.json$")
AUTHORIZE_PATH = "/admin/oauth/authorize"
TOKEN_PATH = "/admin/oauth/access_token"
TOKEN_FAULTS = {"unauthorized", "forbidden", "http500", "invalid_grant"}
EXPIRING_TTL_S = 3600  # Shopify's expiring offline tokens
REFRESH_TTL_S = 90 * 86400
CLIENT_CREDENTIALS_TTL_S = 86399
CODE_TTL_S = 600
# What an app of the shop's own organisation is configured with (client credentials grant).
DEFAULT_APP_SCOPES = frozenset({"read_products", "read_inventory", "read_locations", "read_orders",
                                "read_customers"})
BULK_PATH = re.compile(r"^/bulk/([A-Za-z0-9_-]+)\.jsonl$")

NULL = int(np.iinfo(np.int64).min)  # null in an int64 column
US = 1_000_000
DAY_US = 86_400 * US


# --------------------------------------------------------------------------- schema

_schema: GraphQLSchema | None = None
_schema_lock = threading.Lock()
_schema_seconds = 0.0
_BLOCK_STRING = re.compile(r'"""[\s\S]*?"""')
_LINE_STRING = re.compile(r'^[ \t]*"(?:[^"\\\n]|\\.)*"[ \t]*$', re.M)


def admin_schema() -> GraphQLSchema:
    """Shopify's Admin schema, built once per process (about 1.3 s).

    Descriptions are dropped before parsing (they are three quarters of the 3.2 MB and what
    makes `build_schema` take 3 s); types, fields, arguments and directives are untouched.
    """
    global _schema, _schema_seconds
    with _schema_lock:
        if _schema is None:
            started = time.perf_counter()
            sdl = _LINE_STRING.sub("", _BLOCK_STRING.sub("", SCHEMA_PATH.read_text(encoding="utf-8")))
            _schema = graphql.build_ast_schema(graphql.parse(sdl, no_location=True),
                                               assume_valid=True, assume_valid_sdl=True)
            _schema_seconds = time.perf_counter() - started
        return _schema


def schema_build_seconds() -> float:
    return _schema_seconds


def _is_connection(named: Any) -> bool:
    return (isinstance(named, GraphQLObjectType) and named.name.endswith("Connection")
            and "pageInfo" in named.fields and ("edges" in named.fields or "nodes" in named.fields))


# --------------------------------------------------------------------------- columns

def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    if col.num_chunks == 1:
        return col.chunk(0)
    return pa.concat_arrays(col.chunks) if col.num_chunks else pa.array([], col.type)


def _ints(table: pa.Table, name: str) -> np.ndarray:
    return pc.cast(_column(table, name), pa.int64()).fill_null(NULL).to_numpy(zero_copy_only=False)


def _times(table: pa.Table, name: str) -> np.ndarray:
    """Timestamps as int64 microseconds (NULL for null)."""
    return _ints(table, name)


def _cents(table: pa.Table, name: str) -> np.ndarray:
    col = _column(table, name)
    hundred = pa.scalar(100, pa.decimal128(3, 0))
    return pc.cast(pc.multiply(col, hundred), pa.int64()).fill_null(NULL).to_numpy(zero_copy_only=False)


def _bools(table: pa.Table, name: str) -> np.ndarray:
    return _column(table, name).fill_null(False).to_numpy(zero_copy_only=False).astype(bool)


class _Strings:
    """A dictionary-coded string column: codes (-1 = null) into a list of values."""

    __slots__ = ("codes", "values")

    def __init__(self, codes: np.ndarray, values: list):
        self.codes, self.values = codes, values

    @classmethod
    def of(cls, table: pa.Table, name: str) -> "_Strings":
        encoded = pc.dictionary_encode(_column(table, name))
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(codes, encoded.dictionary.to_pylist())

    def __getitem__(self, i: int) -> str | None:
        code = self.codes[i]
        return None if code < 0 else self.values[code]

    def mapped(self, fn: Callable[[str], Any]) -> "_Strings":
        return _Strings(self.codes, [fn(v) for v in self.values])

    def rank(self) -> np.ndarray:
        """Sortable int per row (by string order; null first)."""
        order = np.asarray(sorted(range(len(self.values)), key=self.values.__getitem__), np.int64)
        ranks = np.zeros(len(self.values) + 1, np.int64)  # slot 0: null
        ranks[order + 1] = np.arange(1, len(order) + 1)
        return ranks[self.codes + 1]


class _Index:
    """Row of an id (vectorised)."""

    def __init__(self, keys: np.ndarray):
        self.sorter = np.argsort(keys, kind="stable")
        self.sorted = keys[self.sorter]

    def rows(self, keys: np.ndarray) -> np.ndarray:
        if len(self.sorted) == 0:
            return np.full(len(keys), -1, np.int64)
        j = np.clip(np.searchsorted(self.sorted, keys), 0, len(self.sorted) - 1)
        return np.where(self.sorted[j] == keys, self.sorter[j], -1)

    def row(self, key: int) -> int | None:
        j = int(np.searchsorted(self.sorted, key))
        if j < len(self.sorted) and int(self.sorted[j]) == key:
            return int(self.sorter[j])
        return None


class _Groups:
    """Child rows of each parent row, ordered by the children's tie-break key."""

    def __init__(self, parent_keys: np.ndarray, child_keys: np.ndarray, child_order: np.ndarray):
        self.order = np.lexsort((child_order, child_keys))
        keys = child_keys[self.order]
        self.start = np.searchsorted(keys, parent_keys, "left")
        self.end = np.searchsorted(keys, parent_keys, "right")

    def __call__(self, parent_row: int) -> np.ndarray:
        return self.order[self.start[parent_row]:self.end[parent_row]]


class _Table:
    """One GraphQL type's rows: columns as attributes, plus what connections need."""

    def __init__(self, type_name: str, n: int, ids: np.ndarray, cursor_us: np.ndarray):
        self.type_name, self.n, self.ids, self.cursor_us = type_name, n, ids, cursor_us
        self.index = _Index(ids)
        self.sort_columns: dict[str, Any] = {}  # sortKey -> int64 array or _Strings
        self.search_columns: dict[str, np.ndarray] = {}  # search field -> µs at served precision
        self._ranks: dict[str, np.ndarray] = {}
        self._perms: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def sort_value(self, key: str) -> Any:
        return self.sort_columns.get(key, self.ids)

    def rank(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(rank per row, rows in ascending order) for a sortKey: by value, then id."""
        key = key if key in self.sort_columns else "ID"
        with self._lock:
            if key not in self._ranks:
                values = self.sort_value(key)
                values = values.rank() if isinstance(values, _Strings) else values
                perm = np.lexsort((self.ids, values))
                rank = np.empty(self.n, np.int64)
                rank[perm] = np.arange(self.n)
                self._ranks[key], self._perms[key] = rank, perm
            return self._ranks[key], self._perms[key]


def _seconds(us: np.ndarray) -> np.ndarray:
    """Served precision (whole seconds), still in µs; NULL stays NULL."""
    return np.where(us == NULL, NULL, (us // US) * US)


def _iso(us: Any) -> str | None:
    us = int(us)
    if us == NULL:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us // US))


def _amount(cents: Any) -> str:
    cents = int(cents)
    sign, cents = ("-", -cents) if cents < 0 else ("", cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _money(cents: Any, currency: str) -> dict | None:
    if int(cents) == NULL:
        return None
    return {"amount": _amount(cents), "currencyCode": currency}


def _bag(cents: Any, currency: str) -> dict | None:
    money = _money(cents, currency)
    return None if money is None else {"shopMoney": money, "presentmentMoney": money}


def _to_us(value: datetime | date | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


# --------------------------------------------------------------------------- the shop's data

class _ShopData:
    """The demo shop's raw tables, columnar, with the joins GraphQL needs."""

    def __init__(self, shop: Any):
        started = time.perf_counter()

        def load(name: str) -> pa.Table:
            parts = [t for t in shop.iter_table("raw_shop", name)]
            if not parts:
                raise ValueError(f"the demo shop yielded no {name} table")
            return pa.concat_tables(parts).combine_chunks()

        t = load("products")
        P = self.products = _Table("Product", t.num_rows, _ints(t, "id"), _times(t, "updated_at"))
        P.title, P.handle = _Strings.of(t, "title"), _Strings.of(t, "handle")
        P.product_type, P.vendor = _Strings.of(t, "product_type"), _Strings.of(t, "vendor")
        P.status = _Strings.of(t, "status").mapped(str.upper)
        P.created, P.updated, P.published = _times(t, "created_at"), P.cursor_us, _times(t, "published_at")

        t = load("product_variants")
        V = self.variants = _Table("ProductVariant", t.num_rows, _ints(t, "id"), _times(t, "updated_at"))
        V.product_id, V.item_id = _ints(t, "product_id"), _ints(t, "inventory_item_id")
        V.title, V.sku = _Strings.of(t, "title"), _Strings.of(t, "sku")
        V.price, V.compare_at = _cents(t, "price"), _cents(t, "compare_at_price")
        V.policy = _Strings.of(t, "inventory_policy").mapped(str.upper)
        V.quantity = _ints(t, "inventory_quantity")
        V.created, V.updated = _times(t, "created_at"), V.cursor_us

        t = load("inventory_items")
        I = self.items = _Table("InventoryItem", t.num_rows, _ints(t, "id"), _times(t, "updated_at"))
        I.sku, I.cost, I.tracked = _Strings.of(t, "sku"), _cents(t, "cost"), _bools(t, "tracked")
        I.created, I.updated = _times(t, "created_at"), I.cursor_us

        t = load("inventory_levels")
        L = self.levels = _Table("InventoryLevel", t.num_rows, np.arange(t.num_rows, dtype=np.int64),
                                 _times(t, "updated_at"))
        L.item_id, L.location_id, L.available = _ints(t, "inventory_item_id"), _ints(t, "location_id"), \
            _ints(t, "available")
        L.updated = L.cursor_us

        t = load("locations")
        Lo = self.locations = _Table("Location", t.num_rows, _ints(t, "id"), _times(t, "updated_at"))
        Lo.name, Lo.country = _Strings.of(t, "name"), _Strings.of(t, "country_code")
        Lo.active = _bools(t, "active")
        Lo.created, Lo.updated = _times(t, "created_at"), Lo.cursor_us

        t = load("orders")
        O = self.orders = _Table("Order", t.num_rows, _ints(t, "id"), _times(t, "updated_at"))
        O.name, O.number = _Strings.of(t, "name"), _ints(t, "order_number")
        O.created, O.processed, O.updated = _times(t, "created_at"), _times(t, "processed_at"), O.cursor_us
        O.cancelled, O.closed = _times(t, "cancelled_at"), _times(t, "closed_at")
        O.cancel_reason = _Strings.of(t, "cancel_reason").mapped(str.upper)
        O.financial = _Strings.of(t, "financial_status").mapped(str.upper)
        O.fulfillment = _Strings.of(t, "fulfillment_status").mapped(
            lambda v: {"fulfilled": "FULFILLED", "partial": "PARTIALLY_FULFILLED"}.get(v, v.upper()))
        O.currency = _Strings.of(t, "currency")
        for money in ("total_price", "subtotal_price", "total_discounts", "total_tax",
                      "total_line_items_price", "total_shipping_price"):
            setattr(O, money, _cents(t, money))
        broken = np.flatnonzero(O.total_line_items_price != O.subtotal_price + O.total_discounts)
        if len(broken):
            raise ValueError(f"order {int(O.ids[broken[0]])}: total_line_items_price != subtotal_price + "
                             f"total_discounts ({len(broken)} orders): the GraphQL mapping assumes it")
        O.test, O.source = _bools(t, "test"), _Strings.of(t, "source_name")
        O.discount_codes = _Strings.of(t, "discount_codes").mapped(
            lambda v: [c.strip() for c in v.split(",") if c.strip()])
        O.customer_id = _ints(t, "customer_id") if "customer_id" in t.column_names else np.full(O.n, NULL)
        for col in ("email", "phone", "browser_ip"):
            setattr(O, col, _Strings.of(t, col) if col in t.column_names
                    else _Strings(np.full(O.n, -1, np.int64), []))

        t = load("order_line_items")
        LI = self.lines = _Table("LineItem", t.num_rows, _ints(t, "id"), _times(t, "order_updated_at"))
        LI.order_id, LI.product_id, LI.variant_id = _ints(t, "order_id"), _ints(t, "product_id"), \
            _ints(t, "variant_id")
        LI.sku, LI.title = _Strings.of(t, "sku"), _Strings.of(t, "title")
        LI.quantity, LI.price, LI.discount = _ints(t, "quantity"), _cents(t, "price"), _cents(t, "total_discount")

        t = load("order_refund_line_items")
        RL = self.refund_lines = _Table("RefundLineItem", t.num_rows, _ints(t, "id"),
                                        _times(t, "order_updated_at"))
        RL.refund_id, RL.order_id, RL.line_id = _ints(t, "refund_id"), _ints(t, "order_id"), \
            _ints(t, "line_item_id")
        RL.quantity, RL.subtotal, RL.created = _ints(t, "quantity"), _cents(t, "subtotal"), \
            _times(t, "created_at")

        refund_ids, first = np.unique(RL.refund_id, return_index=True)
        R = self.refunds = _Table("Refund", len(refund_ids), refund_ids, RL.cursor_us[first])
        R.order_id, R.created = RL.order_id[first], RL.created[first]
        R.updated = R.created
        refund_of_line = R.index.rows(RL.refund_id)
        R.total = np.zeros(R.n, np.int64)
        np.add.at(R.total, refund_of_line, RL.subtotal)

        t = load("customers")
        C = self.customers = _Table("Customer", t.num_rows, _ints(t, "id"), _times(t, "updated_at"))
        C.created, C.updated = _times(t, "created_at"), C.cursor_us
        C.orders_count, C.spent = _ints(t, "orders_count"), _cents(t, "total_spent")
        C.state, C.currency = _Strings.of(t, "state").mapped(str.upper), _Strings.of(t, "currency")
        for col in ("email", "first_name", "last_name", "phone"):
            setattr(C, col, _Strings.of(t, col) if col in t.column_names
                    else _Strings(np.full(C.n, -1, np.int64), []))

        self.currency = O.currency[0] if O.n else "USD"

        # joins (row numbers, -1 when missing)
        V.product_row, V.item_row = P.index.rows(V.product_id), I.index.rows(V.item_id)
        I.variant_row = _Index(V.item_id).rows(I.ids)
        L.item_row, L.location_row = I.index.rows(L.item_id), Lo.index.rows(L.location_id)
        LI.order_row, LI.variant_row, LI.product_row = O.index.rows(LI.order_id), V.index.rows(LI.variant_id), \
            P.index.rows(LI.product_id)
        RL.line_row, RL.refund_row = LI.index.rows(RL.line_id), refund_of_line
        R.order_row = O.index.rows(R.order_id)
        O.customer_row = C.index.rows(O.customer_id)
        O.refunded = np.zeros(O.n, np.int64)
        np.add.at(O.refunded, R.order_row[R.order_row >= 0], R.total[R.order_row >= 0])

        P.variants = _Groups(P.ids, V.product_id, V.ids)
        I.levels = _Groups(I.ids, L.item_id, L.location_id)
        Lo.levels = _Groups(Lo.ids, L.location_id, L.item_id)
        I.variants = _Groups(I.ids, V.item_id, V.ids)
        O.lines = _Groups(O.ids, LI.order_id, LI.ids)
        O.refund_groups = _Groups(O.ids, R.order_id, R.ids)
        R.lines = _Groups(R.ids, RL.refund_id, RL.ids)
        C.orders = _Groups(C.ids, O.customer_id, O.ids)
        self.level_of = {(int(i), int(loc)): r for r, (i, loc) in enumerate(zip(L.item_id, L.location_id))} \
            if L.n <= 2_000_000 else None

        # sorting and search, at the precision served (whole seconds)
        for table, columns in (
            (P, {"CREATED_AT": P.created, "UPDATED_AT": P.updated, "PUBLISHED_AT": P.published}),
            (V, {"CREATED_AT": V.created, "UPDATED_AT": V.updated}),
            (I, {"CREATED_AT": I.created, "UPDATED_AT": I.updated}),
            (L, {"UPDATED_AT": L.updated}),
            (Lo, {"CREATED_AT": Lo.created, "UPDATED_AT": Lo.updated}),
            (O, {"CREATED_AT": O.created, "UPDATED_AT": O.updated, "PROCESSED_AT": O.processed}),
            (LI, {}), (RL, {"CREATED_AT": RL.created}),
            (R, {"CREATED_AT": R.created, "UPDATED_AT": R.updated}),
            (C, {"CREATED_AT": C.created, "UPDATED_AT": C.updated}),
        ):
            for key, us in columns.items():
                served = _seconds(us)
                table.sort_columns[key] = served
                table.search_columns[key.lower()] = served
        P.sort_columns.update({"TITLE": P.title, "VENDOR": P.vendor, "PRODUCT_TYPE": P.product_type})
        V.sort_columns.update({"SKU": V.sku, "TITLE": V.title, "INVENTORY_QUANTITY": V.quantity})
        Lo.sort_columns["NAME"] = Lo.name
        O.sort_columns.update({"ORDER_NUMBER": O.number, "TOTAL_PRICE": O.total_price})
        self.build_seconds = time.perf_counter() - started

    def tables(self) -> dict[str, _Table]:
        return {t.type_name: t for t in (self.products, self.variants, self.items, self.levels, self.locations,
                                         self.orders, self.lines, self.refunds, self.refund_lines,
                                         self.customers)}


# --------------------------------------------------------------------------- execution context

@dataclass
class _Ctx:
    cutoff_us: int | None
    orders_min_us: int | None
    bulk: bool = False
    bulk_slice: tuple[int, int] | None = None
    bulk_more: bool = False
    bulk_cache: dict = field(default_factory=dict)
    polled: set = field(default_factory=set)


def _not_served(info: Any) -> None:
    """A field Shopify has but the fake does not fill: say so, rather than answer a null
    Shopify would not send."""
    raise GraphQLError(f"fake_shopify does not serve {info.parent_type.name}.{info.field_name} (it exists in the "
                       "Admin schema; add it to tests/fake_shopify.py if the connector needs it)",
                       extensions={"code": "FAKE_NOT_SERVED"})


class _Obj:
    """A row reached by a query; its fields are computed when selected."""

    __slots__ = ("spec", "i")

    def __init__(self, spec: "_Spec", i: int):
        self.spec, self.i = spec, int(i)


@dataclass
class _Spec:
    name: str
    table: _Table
    getters: dict[str, Callable[[int, Any, dict], Any]]


def _type_of(value: Any, info: Any, abstract_type: Any) -> str | None:
    if isinstance(value, _Obj):
        return value.spec.name
    if isinstance(value, dict):
        return value.get("__typename")
    return None


def _cursor(last_id: int, last_value: Any) -> str:
    raw = json.dumps({"last_id": last_id, "last_value": last_value}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=True))
        return int(data["last_id"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise GraphQLError("Invalid cursor for current pagination sort.",
                           extensions={"code": "BAD_REQUEST"}) from None


_TERM = re.compile(r"""(-?)([A-Za-z_][\w.]*):(>=|<=|>|<)?('[^']*'|"[^"]*"|[^\s)]+)""")


def _parse_instant(text: str) -> tuple[int, bool] | None:
    """(µs, date_only) of a search value, or None when it is not a date."""
    text = text.strip("'\"")
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return _to_us(date.fromisoformat(text)), True
        return _to_us(datetime.fromisoformat(text.replace("Z", "+00:00"))), False
    except ValueError:
        return None


def _search_mask(table: _Table, query: str | None, rows: np.ndarray | None) -> np.ndarray | None:
    """Shopify search syntax, the date terms: `updated_at:>'2026-11-01T00:00:00Z'`, `>=`, `<`,
    `<=`, equality (a date means that day), `-` to negate; terms joined by spaces or AND.
    Any other term is ignored (as Shopify ignores a field it does not know)."""
    if not query:
        return None
    mask = None
    for negate, name, op, raw in _TERM.findall(query):
        column = table.search_columns.get(name.lower())
        instant = _parse_instant(raw) if column is not None else None
        if instant is None:
            continue
        value, date_only = instant
        served = column if rows is None else column[rows]
        valid = served != NULL
        if op == ">":
            term = served > value if not date_only else served >= value + DAY_US
        elif op == ">=":
            term = served >= value
        elif op == "<":
            term = served < value
        elif op == "<=":
            term = served <= value if not date_only else served < value + DAY_US
        else:
            term = (served >= value) & (served < value + DAY_US) if date_only else served == value
        term &= valid
        if negate:
            term = ~term
        mask = term if mask is None else mask & term
    return mask


# --------------------------------------------------------------------------- the GraphQL model

class _Model:
    """Resolvers: one getter per (type, field); connections, look-ups, bulk operations."""

    def __init__(self, data: _ShopData, fake: "FakeShopify"):
        self.data, self.fake = data, fake
        self.specs: dict[str, _Spec] = {}
        self._build_specs()
        self.roots = self._root_fields()

    # ---- resolver entry points
    def resolve(self, source: Any, info: Any, **args: Any) -> Any:
        if source.__class__ is _Obj:
            getter = source.spec.getters.get(info.field_name)
            if getter is None:
                _not_served(info)
            return getter(source.i, info, args)
        if source is None:
            getter = self.roots.get((info.parent_type.name, info.field_name))
            if getter is None:
                _not_served(info)
            return getter(info, args)
        if isinstance(source, dict):
            if info.field_name not in source:
                _not_served(info)
            value = source[info.field_name]
            return value() if callable(value) else value
        return None

    def obj(self, type_name: str, row: Any) -> _Obj | None:
        row = int(row)
        return None if row < 0 else _Obj(self.specs[type_name], row)

    # ---- visibility
    def visible(self, table: _Table, rows: np.ndarray | None, ctx: _Ctx) -> np.ndarray | None:
        """Mask of the rows that exist now (cutoff, 60-day order window); None = all."""
        mask = None
        if ctx.cutoff_us is not None:
            cursor = table.cursor_us if rows is None else table.cursor_us[rows]
            mask = cursor < ctx.cutoff_us
        if table is self.data.orders and ctx.orders_min_us is not None:
            created = table.created if rows is None else table.created[rows]
            window = created >= ctx.orders_min_us
            mask = window if mask is None else mask & window
        return mask

    def row_visible(self, table: _Table, row: int, ctx: _Ctx) -> bool:
        mask = self.visible(table, np.asarray([row]), ctx)
        return True if mask is None else bool(mask[0])

    # ---- connections
    def connection(self, type_name: str, rows: np.ndarray | None, info: Any, args: dict,
                   default_sort: str = "ID", extra_mask: Callable[[np.ndarray | None], Any] | None = None) -> dict:
        ctx: _Ctx = info.context
        spec = self.specs[type_name]
        table = spec.table
        top = info.parent_type.name == "QueryRoot"
        first, last = args.get("first"), args.get("last")
        if not ctx.bulk:
            if first is None and last is None:
                raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
            for name, size in (("first", first), ("last", last)):
                if size is not None and size > MAX_PAGE:
                    raise GraphQLError(f"The `{name}` argument must be at most {MAX_PAGE}",
                                       extensions={"code": "BAD_REQUEST"})
                if size is not None and size < 0:
                    raise GraphQLError(f"The `{name}` argument must be at least 0",
                                       extensions={"code": "BAD_REQUEST"})
        sort_key = args.get("sortKey") or default_sort
        reverse = bool(args.get("reverse"))
        cache_key = None
        if ctx.bulk and top:
            cache_key = (info.path.key, type_name, repr(sorted((k, v) for k, v in args.items()
                                                            if k not in ("first", "last", "after", "before"))))
        ordered = ctx.bulk_cache.get(cache_key) if cache_key else None
        rank, perm = table.rank(sort_key)
        if ordered is None:
            mask = self.visible(table, rows, ctx)
            search = _search_mask(table, args.get("query"), rows)
            if search is not None:
                mask = search if mask is None else mask & search
            if extra_mask is not None:
                more = extra_mask(rows)
                if more is not None:
                    mask = more if mask is None else mask & more
            if rows is None:
                ordered = perm if mask is None else perm[mask[perm]]
            else:
                kept = rows if mask is None else rows[mask]
                ordered = kept[np.argsort(rank[kept], kind="stable")]
            if reverse:
                ordered = ordered[::-1]
            if cache_key:
                ctx.bulk_cache[cache_key] = ordered
        total = len(ordered)
        start, end = 0, total
        if not ctx.bulk:
            ranks = rank[ordered]
            signed = -ranks if reverse else ranks
            for name in ("after", "before"):
                if args.get(name) is None:
                    continue
                row = table.index.row(_decode_cursor(args[name]))
                if row is None:
                    raise GraphQLError("Invalid cursor for current pagination sort.",
                                       extensions={"code": "BAD_REQUEST"})
                target = -rank[row] if reverse else rank[row]
                if name == "after":
                    start = max(start, int(np.searchsorted(signed, target, "right")))
                else:
                    end = min(end, int(np.searchsorted(signed, target, "left")))
            end = max(start, end)
            lo, hi = start, end
            if first is not None:
                hi = min(hi, lo + first)
            if last is not None:
                lo = max(lo, hi - last)
        else:
            lo, hi = 0, total
            if top and ctx.bulk_slice is not None:
                lo, hi = min(ctx.bulk_slice[0], total), min(ctx.bulk_slice[1], total)
                if total > hi:
                    ctx.bulk_more = True
        page = ordered[lo:hi]
        value = table.sort_value(sort_key if sort_key in table.sort_columns else "ID")
        time_key = sort_key in ("UPDATED_AT", "CREATED_AT", "PROCESSED_AT", "PUBLISHED_AT")

        def cursor_of(r: int) -> Callable[[], str]:
            def make() -> str:
                v = value[r]
                v = _iso(v) if time_key else (v if isinstance(v, str) or v is None else int(v))
                return _cursor(int(table.ids[r]), v)
            return make

        nodes = [_Obj(spec, r) for r in page.tolist()]
        edges = [{"cursor": cursor_of(o.i), "node": o} for o in nodes]
        return {
            "edges": edges, "nodes": nodes,
            "pageInfo": {"hasNextPage": hi < total, "hasPreviousPage": lo > 0,
                         "startCursor": edges[0]["cursor"] if edges else None,
                         "endCursor": edges[-1]["cursor"] if edges else None},
        }

    def lookup(self, type_name: str, gid: str, info: Any) -> _Obj | None:
        kind, number, query = _parse_gid(gid)
        if kind != type_name:
            return None
        return self._node(kind, number, query, info.context)

    def _node(self, kind: str, number: int, query: str, ctx: _Ctx) -> Any:
        if kind == "BulkOperation":
            return self.fake._bulk_view(f"gid://shopify/BulkOperation/{number}", ctx)
        spec = self.specs.get(kind)
        if spec is None:
            return None
        table = spec.table
        if kind == "InventoryLevel":
            item = re.search(r"inventory_item_id=(\d+)", query or "")
            row = self._level_row(int(item.group(1)), number) if item else None
        else:
            row = table.index.row(number)
        if row is None or not self.row_visible(table, row, ctx):
            return None
        return _Obj(spec, row)

    def _level_row(self, item_id: int, location_id: int) -> int | None:
        if self.data.level_of is not None:
            return self.data.level_of.get((item_id, location_id))
        L = self.data.levels
        hits = np.flatnonzero((L.item_id == item_id) & (L.location_id == location_id))
        return int(hits[0]) if len(hits) else None

    # ---- the types
    def _build_specs(self) -> None:
        d = self.data
        cur = d.currency
        P, V, I, L, Lo, O, LI, R, RL, C = (d.products, d.variants, d.items, d.levels, d.locations, d.orders,
                                           d.lines, d.refunds, d.refund_lines, d.customers)

        def s(col: Any) -> Callable:
            return lambda i, info, a: col[i]

        def n(col: np.ndarray) -> Callable:
            return lambda i, info, a: int(col[i])

        def b(col: np.ndarray) -> Callable:
            return lambda i, info, a: bool(col[i])

        def t(col: np.ndarray) -> Callable:
            return lambda i, info, a: _iso(col[i])

        def gid(type_name: str, col: np.ndarray) -> Callable:
            return lambda i, info, a: f"gid://shopify/{type_name}/{int(col[i])}"

        def legacy(col: np.ndarray) -> Callable:
            return lambda i, info, a: str(int(col[i]))

        def ref(type_name: str, rows: np.ndarray) -> Callable:
            return lambda i, info, a: self.obj(type_name, rows[i])

        def conn(type_name: str, groups: _Groups, default_sort: str = "ID", extra: Callable | None = None) -> Callable:
            return lambda i, info, a: self.connection(type_name, groups(i), info, a, default_sort,
                                                      (lambda rows: extra(rows, a)) if extra else None)

        def total(i: int) -> int:
            return int(LI.price[i]) * int(LI.quantity[i])

        def discount(i: int) -> int:
            v = int(LI.discount[i])
            return 0 if v == NULL else v

        def line_currency(i: int) -> str:
            row = int(LI.order_row[i])
            return O.currency[row] if row >= 0 else cur

        def level_quantities(i: int, info: Any, a: dict) -> list:
            available = int(L.available[i])
            base = f"gid://shopify/InventoryQuantity/{int(L.location_id[i])}?inventory_item_id={int(L.item_id[i])}"
            return [{"name": name, "quantity": available if name in ("available", "on_hand") else 0,
                     "id": f"{base}&name={name}", "updatedAt": _iso(L.updated[i])}
                    for name in a.get("names") or []]

        def item_level(i: int, info: Any, a: dict) -> _Obj | None:
            kind, number, _ = _parse_gid(a["locationId"])
            row = self._level_row(int(I.ids[i]), number) if kind == "Location" else None
            return None if row is None else self.obj("InventoryLevel", row)

        def order_refunds(i: int, info: Any, a: dict) -> list:
            rows = O.refund_groups(i)
            mask = self.visible(R, rows, info.context)
            rows = rows if mask is None else rows[mask]
            if a.get("first") is not None:
                rows = rows[:a["first"]]
            return [_Obj(self.specs["Refund"], r) for r in rows.tolist()]

        def address(i: int, info: Any, a: dict) -> dict:
            return {"countryCode": Lo.country[i], "formatted": []}

        def active_only(rows: np.ndarray | None, a: dict) -> np.ndarray | None:
            if a.get("includeInactive"):
                return None
            return Lo.active if rows is None else Lo.active[rows]

        self.active_only = active_only
        specs = {
            "Product": (P, {
                "id": gid("Product", P.ids), "legacyResourceId": legacy(P.ids), "title": s(P.title),
                "handle": s(P.handle), "productType": s(P.product_type), "vendor": s(P.vendor),
                "status": s(P.status), "createdAt": t(P.created), "updatedAt": t(P.updated),
                "publishedAt": t(P.published), "tags": lambda i, info, a: [],
                "variants": conn("ProductVariant", P.variants, "POSITION"),
            }),
            "ProductVariant": (V, {
                "id": gid("ProductVariant", V.ids), "legacyResourceId": legacy(V.ids), "title": s(V.title),
                "sku": s(V.sku), "price": lambda i, info, a: _amount(V.price[i]),
                "compareAtPrice": lambda i, info, a: None if V.compare_at[i] == NULL else _amount(V.compare_at[i]),
                "inventoryPolicy": s(V.policy), "inventoryQuantity": n(V.quantity),
                "createdAt": t(V.created), "updatedAt": t(V.updated),
                "product": ref("Product", V.product_row), "inventoryItem": ref("InventoryItem", V.item_row),
                "displayName": lambda i, info, a: f"{P.title[V.product_row[i]]} - {V.title[i]}",
            }),
            "InventoryItem": (I, {
                "id": gid("InventoryItem", I.ids), "legacyResourceId": legacy(I.ids), "sku": s(I.sku),
                "tracked": b(I.tracked), "unitCost": lambda i, info, a: _money(I.cost[i], cur),
                "createdAt": t(I.created), "updatedAt": t(I.updated),
                "inventoryLevels": conn("InventoryLevel", I.levels),
                "inventoryLevel": item_level,
                "variant": ref("ProductVariant", I.variant_row),
                "variants": conn("ProductVariant", I.variants),
            }),
            "InventoryLevel": (L, {
                "id": lambda i, info, a: (f"gid://shopify/InventoryLevel/{int(L.location_id[i])}"
                                          f"?inventory_item_id={int(L.item_id[i])}"),
                "updatedAt": t(L.updated), "location": ref("Location", L.location_row),
                "item": ref("InventoryItem", L.item_row), "quantities": level_quantities,
            }),
            "Location": (Lo, {
                "id": gid("Location", Lo.ids), "legacyResourceId": legacy(Lo.ids), "name": s(Lo.name),
                "isActive": b(Lo.active), "address": address, "createdAt": t(Lo.created),
                "updatedAt": t(Lo.updated), "inventoryLevels": conn("InventoryLevel", Lo.levels),
            }),
            "Order": (O, {
                "id": gid("Order", O.ids), "legacyResourceId": legacy(O.ids), "name": s(O.name),
                "number": n(O.number), "createdAt": t(O.created), "processedAt": t(O.processed),
                "updatedAt": t(O.updated), "cancelledAt": t(O.cancelled), "cancelReason": s(O.cancel_reason),
                "closedAt": t(O.closed), "closed": lambda i, info, a: bool(O.closed[i] != NULL),
                "displayFinancialStatus": s(O.financial),
                "displayFulfillmentStatus": lambda i, info, a: O.fulfillment[i] or "UNFULFILLED",
                "currencyCode": s(O.currency), "presentmentCurrencyCode": s(O.currency),
                "test": b(O.test), "sourceName": s(O.source),
                "discountCodes": lambda i, info, a: list(O.discount_codes[i] or []),
                "customer": ref("Customer", O.customer_row),
                "totalPriceSet": lambda i, info, a: _bag(O.total_price[i], O.currency[i]),
                "subtotalPriceSet": lambda i, info, a: _bag(O.subtotal_price[i], O.currency[i]),
                "totalDiscountsSet": lambda i, info, a: _bag(O.total_discounts[i], O.currency[i]),
                "totalTaxSet": lambda i, info, a: _bag(O.total_tax[i], O.currency[i]),
                "totalShippingPriceSet": lambda i, info, a: _bag(O.total_shipping_price[i], O.currency[i]),
                "totalRefundedSet": lambda i, info, a: _bag(O.refunded[i], O.currency[i]),
                "email": s(O.email), "phone": s(O.phone), "clientIp": s(O.browser_ip),
                "tags": lambda i, info, a: [],
                "lineItems": conn("LineItem", O.lines), "refunds": order_refunds,
            }),
            "LineItem": (LI, {
                "id": gid("LineItem", LI.ids), "sku": s(LI.sku), "title": s(LI.title), "name": s(LI.title),
                "quantity": n(LI.quantity), "currentQuantity": n(LI.quantity),
                "variant": ref("ProductVariant", LI.variant_row), "product": ref("Product", LI.product_row),
                "variantTitle": lambda i, info, a: V.title[LI.variant_row[i]] if LI.variant_row[i] >= 0 else None,
                "vendor": lambda i, info, a: P.vendor[LI.product_row[i]] if LI.product_row[i] >= 0 else None,
                "originalUnitPriceSet": lambda i, info, a: _bag(LI.price[i], line_currency(i)),
                "totalDiscountSet": lambda i, info, a: _bag(discount(i), line_currency(i)),
                "originalTotalSet": lambda i, info, a: _bag(total(i), line_currency(i)),
                "discountedTotalSet": lambda i, info, a: _bag(total(i) - discount(i), line_currency(i)),
            }),
            "Refund": (R, {
                "id": gid("Refund", R.ids), "legacyResourceId": legacy(R.ids), "createdAt": t(R.created),
                "updatedAt": t(R.updated), "processedAt": t(R.created), "order": ref("Order", R.order_row),
                "note": lambda i, info, a: None,
                "totalRefundedSet": lambda i, info, a: _bag(R.total[i], O.currency[R.order_row[i]]
                                                            if R.order_row[i] >= 0 else cur),
                "refundLineItems": conn("RefundLineItem", R.lines),
            }),
            "RefundLineItem": (RL, {
                "id": gid("RefundLineItem", RL.ids), "quantity": n(RL.quantity),
                "subtotalSet": lambda i, info, a: _bag(RL.subtotal[i], cur),
                "lineItem": ref("LineItem", RL.line_row),
                "restockType": lambda i, info, a: "NO_RESTOCK", "restocked": lambda i, info, a: False,
            }),
            "Customer": (C, {
                "id": gid("Customer", C.ids), "legacyResourceId": legacy(C.ids), "createdAt": t(C.created),
                "updatedAt": t(C.updated), "numberOfOrders": lambda i, info, a: str(int(C.orders_count[i])),
                "amountSpent": lambda i, info, a: _money(C.spent[i], C.currency[i] or cur),
                "state": s(C.state), "firstName": s(C.first_name), "lastName": s(C.last_name),
                "email": s(C.email), "phone": s(C.phone),
                "displayName": lambda i, info, a: " ".join(x for x in (C.first_name[i], C.last_name[i]) if x),
                "defaultEmailAddress": lambda i, info, a: ({"emailAddress": C.email[i]} if C.email[i] else None),
                "defaultPhoneNumber": lambda i, info, a: ({"phoneNumber": C.phone[i]} if C.phone[i] else None),
                "tags": lambda i, info, a: [],
                "orders": conn("Order", C.orders, "ID"),
            }),
        }
        for name, (table, getters) in specs.items():
            self.specs[name] = _Spec(name, table, getters)

    def _root_fields(self) -> dict:
        def top(type_name: str, default_sort: str, extra: Callable | None = None) -> Callable:
            return lambda info, a: self.connection(type_name, None, info, a, default_sort,
                                                   (lambda rows: extra(rows, a)) if extra else None)

        def one(type_name: str) -> Callable:
            return lambda info, a: self.lookup(type_name, a["id"], info) if a.get("id") else None

        def node(info: Any, a: dict) -> Any:
            kind, number, query = _parse_gid(a["id"])
            return self._node(kind, number, query, info.context)

        def nodes(info: Any, a: dict) -> list:
            return [self._node(*_parse_gid(x), info.context) for x in a["ids"]]

        def shop(info: Any, a: dict) -> dict:
            return {"__typename": "Shop", "id": "gid://shopify/Shop/1", "name": "Cleargro Demo",
                    "currencyCode": self.data.currency, "ianaTimezone": "Etc/UTC",
                    "myshopifyDomain": "cleargro-demo.myshopify.com"}

        return {
            ("QueryRoot", "products"): top("Product", "ID"),
            ("QueryRoot", "productVariants"): top("ProductVariant", "ID"),
            ("QueryRoot", "orders"): top("Order", "PROCESSED_AT"),
            ("QueryRoot", "locations"): top("Location", "NAME", self.active_only),
            ("QueryRoot", "inventoryItems"): top("InventoryItem", "ID"),
            ("QueryRoot", "customers"): top("Customer", "ID"),
            ("QueryRoot", "product"): one("Product"),
            ("QueryRoot", "productVariant"): one("ProductVariant"),
            ("QueryRoot", "order"): one("Order"),
            ("QueryRoot", "customer"): one("Customer"),
            ("QueryRoot", "location"): one("Location"),
            ("QueryRoot", "inventoryItem"): one("InventoryItem"),
            ("QueryRoot", "inventoryLevel"): one("InventoryLevel"),
            ("QueryRoot", "refund"): one("Refund"),
            ("QueryRoot", "node"): node,
            ("QueryRoot", "nodes"): nodes,
            ("QueryRoot", "shop"): shop,
            ("QueryRoot", "bulkOperation"): lambda info, a: self.fake._bulk_view(a["id"], info.context),
            ("QueryRoot", "currentBulkOperation"): lambda info, a: self.fake._bulk_current(info.context),
            ("Mutation", "bulkOperationRunQuery"): lambda info, a: self.fake._bulk_run(
                a["query"], bool(a.get("groupObjects"))),
            ("Mutation", "bulkOperationCancel"): lambda info, a: self.fake._bulk_cancel(a["id"], info.context),
        }


_GID = re.compile(r"^gid://shopify/([A-Za-z]+)/(\d+)(?:\?(.*))?$")


def _parse_gid(gid: str) -> tuple[str, int, str]:
    match = _GID.match(gid or "")
    if not match:
        raise GraphQLError(f"Invalid global id '{gid}'", extensions={"code": "argumentLiteralsIncompatible",
                                                                   "typeName": "CoercionError"})
    return match.group(1), int(match.group(2)), match.group(3) or ""


# --------------------------------------------------------------------------- document analysis

class _Doc:
    """A parsed and validated request document, with what cost and bulk analysis need."""

    def __init__(self, schema: GraphQLSchema, document: graphql.DocumentNode):
        self.schema, self.document = schema, document
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def collect(self, parent: Any, selection_sets: list, variables: dict) -> "OrderedDict[str, tuple]":
        """response key -> (field definition or None, [field nodes]), fragments merged."""
        out: OrderedDict[str, tuple] = OrderedDict()

        def walk(parent_type: Any, selection_set: Any) -> None:
            for sel in selection_set.selections:
                if not _included(sel, variables):
                    continue
                if isinstance(sel, FieldNode):
                    name = sel.name.value
                    if name.startswith("__"):
                        continue
                    key = sel.alias.value if sel.alias else name
                    fields = getattr(parent_type, "fields", None) or {}
                    entry = out.setdefault(key, (fields.get(name), []))
                    entry[1].append(sel)
                elif isinstance(sel, InlineFragmentNode):
                    cond = sel.type_condition
                    walk(self.schema.get_type(cond.name.value) if cond else parent_type, sel.selection_set)
                elif isinstance(sel, FragmentSpreadNode):
                    frag = self.fragments.get(sel.name.value)
                    if frag is not None:
                        walk(self.schema.get_type(frag.type_condition.name.value), frag.selection_set)

        for selection_set in selection_sets:
            walk(parent, selection_set)
        return out


def _included(node: Any, variables: dict) -> bool:
    if not getattr(node, "directives", None):
        return True
    skip = get_directive_values(GraphQLSkipDirective, node, variables)
    if skip and skip.get("if"):
        return False
    include = get_directive_values(GraphQLIncludeDirective, node, variables)
    return not (include is not None and not include.get("if"))


def _subs(nodes: list) -> list:
    return [n.selection_set for n in nodes if n.selection_set]


def _args(field_def: Any, node: FieldNode, variables: dict) -> dict:
    try:
        return get_argument_values(field_def, node, variables)
    except GraphQLError:
        return {}


def requested_cost(doc: _Doc, op: OperationDefinitionNode, variables: dict) -> int:
    """Shopify's calculated cost, simplified: objects 1, scalars and enums 0, a connection
    2 + (first or last) x the cost of one node, a mutation field 10."""
    root = doc.schema.get_root_type(op.operation)
    if op.operation.value == "mutation":
        return MUTATION_COST * len(doc.collect(root, [op.selection_set], variables))
    return _selection_cost(doc, root, [op.selection_set], variables)


def _selection_cost(doc: _Doc, parent: Any, selection_sets: list, variables: dict) -> int:
    total = 0
    for field_def, nodes in doc.collect(parent, selection_sets, variables).values():
        if field_def is None:
            continue
        named = get_named_type(field_def.type)
        if is_leaf_type(named):
            continue
        args = _args(field_def, nodes[0], variables)
        if _is_connection(named):
            size = args.get("first") or args.get("last") or 0
            total += 2 + size * _node_cost(doc, named, _subs(nodes), variables)
        else:
            cost = 1 + _selection_cost(doc, named, _subs(nodes), variables)
            if is_list_type(get_nullable_type(field_def.type)) and args.get("first"):
                cost *= args["first"]
            total += cost
    return total


def _node_cost(doc: _Doc, connection: Any, selection_sets: list, variables: dict) -> int:
    best = 0
    for field_def, nodes in doc.collect(connection, selection_sets, variables).values():
        name = nodes[0].name.value
        if name == "nodes":
            best = max(best, 1 + _selection_cost(doc, get_named_type(field_def.type), _subs(nodes), variables))
        elif name == "edges":
            edge = get_named_type(field_def.type)
            for node_def, node_nodes in doc.collect(edge, _subs(nodes), variables).values():
                if node_nodes[0].name.value == "node":
                    best = max(best, 1 + _selection_cost(doc, get_named_type(node_def.type), _subs(node_nodes),
                                                         variables))
    return best


def actual_cost(doc: _Doc, op: OperationDefinitionNode, variables: dict, data: Any) -> int:
    """The same model applied to what was returned."""
    root = doc.schema.get_root_type(op.operation)
    if op.operation.value == "mutation":
        return MUTATION_COST * len(doc.collect(root, [op.selection_set], variables))
    return _value_cost(doc, root, [op.selection_set], variables, data)


def _value_cost(doc: _Doc, parent: Any, selection_sets: list, variables: dict, value: Any) -> int:
    if not isinstance(value, dict):
        return 0
    total = 0
    for key, (field_def, nodes) in doc.collect(parent, selection_sets, variables).items():
        v = value.get(key)
        if field_def is None or v is None:
            continue
        named = get_named_type(field_def.type)
        if is_leaf_type(named):
            continue
        subs = _subs(nodes)
        if _is_connection(named):
            best = 0
            for ckey, (cdef, cnodes) in doc.collect(named, subs, variables).items():
                items = v.get(ckey) or []
                name = cnodes[0].name.value
                if name == "nodes":
                    node_type = get_named_type(cdef.type)
                    best = max(best, sum(1 + _value_cost(doc, node_type, _subs(cnodes), variables, x)
                                         for x in items if x is not None))
                elif name == "edges":
                    edge = get_named_type(cdef.type)
                    for nkey, (ndef, nnodes) in doc.collect(edge, _subs(cnodes), variables).items():
                        if nnodes[0].name.value == "node":
                            node_type = get_named_type(ndef.type)
                            best = max(best, sum(1 + _value_cost(doc, node_type, _subs(nnodes), variables,
                                                                 e.get(nkey)) for e in items if e))
            total += 2 + best
        elif isinstance(v, list):
            total += sum(1 + _value_cost(doc, named, subs, variables, x) for x in v if x is not None)
        else:
            total += 1 + _value_cost(doc, named, subs, variables, v)
    return total


# --------------------------------------------------------------------------- Shopify-style errors

def _node_paths(document: graphql.DocumentNode) -> dict[int, tuple[list, str | None, str | None]]:
    """id(AST node) -> (Shopify error path, field name, argument name)."""
    paths: dict[int, tuple[list, str | None, str | None]] = {}

    def walk(selection_set: Any, prefix: list) -> None:
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                path = prefix + [sel.alias.value if sel.alias else sel.name.value]
                paths[id(sel)] = (path, sel.name.value, None)
                for arg in sel.arguments or ():
                    entry = (path + [arg.name.value], sel.name.value, arg.name.value)
                    paths[id(arg)] = entry
                    paths[id(arg.value)] = entry
                if sel.selection_set:
                    walk(sel.selection_set, path)
            elif isinstance(sel, InlineFragmentNode):
                cond = sel.type_condition
                walk(sel.selection_set, prefix + [f"... on {cond.name.value}" if cond else "..."])
            elif isinstance(sel, FragmentSpreadNode):
                paths[id(sel)] = (prefix + [f"... {sel.name.value}"], None, None)

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            label = definition.operation.value + (f" {definition.name.value}" if definition.name else "")
            paths[id(definition)] = ([label], None, None)
            walk(definition.selection_set, [label])
        elif isinstance(definition, FragmentDefinitionNode):
            walk(definition.selection_set, [f"fragment {definition.name.value}"])
    return paths


def _shopify_error(error: GraphQLError, paths: dict) -> dict:
    """A graphql-core validation error in the shape and wording Shopify (graphql-ruby) uses."""
    message = error.message
    out: dict[str, Any] = {"message": message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    where = paths.get(id(error.nodes[0])) if error.nodes else None
    if where:
        out["path"] = where[0]
    extensions: dict[str, Any] | None = None
    if m := re.match(r"Cannot query field '([^']+)' on type '([^']+)'\.", message):
        out["message"] = f"Field '{m[1]}' doesn't exist on type '{m[2]}'"
        extensions = {"code": "undefinedField", "typeName": m[2], "fieldName": m[1]}
    elif m := re.match(r"Unknown argument '([^']+)' on field '[^.']+\.([^']+)'\.", message):
        out["message"] = f"Field '{m[2]}' doesn't accept argument '{m[1]}'"
        extensions = {"code": "argumentNotAccepted", "name": m[2], "typeName": "Field", "argumentName": m[1]}
    elif m := re.match(r"Field '([^']+)' argument '([^']+)' of type '[^']+' is required", message):
        out["message"] = f"Field '{m[1]}' is missing required arguments: {m[2]}"
        extensions = {"code": "missingRequiredArguments", "className": "Field", "name": m[1], "arguments": m[2]}
    elif m := re.match(r"Field '([^']+)' of type '([^']+)' must have a selection of subfields", message):
        type_name = m[2].strip("[]!")
        out["message"] = (f"Field must have selections (field '{m[1]}' returns {type_name} but has no "
                          f"selections. Did you mean '{m[1]} {{ ... }}'?)")
        extensions = {"code": "selectionMismatch", "nodeName": f"field '{m[1]}'", "typeName": type_name}
    elif m := re.match(r"Field '([^']+)' must not have a selection since type '([^']+)' has no subfields", message):
        out["message"] = (f"Selections can't be made on scalars (field '{m[1]}' returns {m[2].strip('!')} but has "
                          "selections)")
        extensions = {"code": "selectionMismatch", "nodeName": f"field '{m[1]}'", "typeName": m[2].strip("!")}
    elif m := re.match(r"Unknown type '([^']+)'", message):
        extensions = {"code": "undefinedType", "typeName": m[1]}
    elif m := re.match(r"Variable '\$([^']+)' is never used", message):
        out["message"] = f"Variable ${m[1]} is declared but not used"
        extensions = {"code": "variableNotUsed", "variableName": m[1]}
    elif m := re.match(r"Variable '\$([^']+)' is not defined", message):
        out["message"] = f"Variable ${m[1]} is used but not declared"
        extensions = {"code": "variableNotDefined", "variableName": m[1]}
    elif where and where[2] and error.nodes and ("cannot represent" in message or "does not exist in" in message
                                                 or "Expected value of type" in message):
        value = graphql.print_ast(error.nodes[0])
        expected = re.search(r"in '([^']+)' enum|type '([^']+)'", message)
        type_name = (expected[1] or expected[2]).strip("!") if expected else "?"
        out["message"] = (f"Argument '{where[2]}' on Field '{where[1]}' has an invalid value ({value}). "
                          f"Expected type '{type_name}'.")
        extensions = {"code": "argumentLiteralsIncompatible", "typeName": "Field", "argumentName": where[2]}
    if extensions:
        out["extensions"] = extensions
    return out


# --------------------------------------------------------------------------- bulk operations

@dataclass
class _BulkOp:
    number: int
    query: str
    script: list[str]
    group: bool
    truncate: Any
    error_code: str
    partial: bool
    created_at: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    polls: int = 0
    status: str = "CREATED"
    completed_at: str | None = None
    canceled: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    path: Path | None = None
    object_count: int = 0
    root_count: int = 0
    file_size: int = 0
    partial_size: int = 0
    partial_count: int = 0
    partial_roots: int = 0
    truncated_size: int = 0
    failure: str | None = None

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.number}"


def _bulk_user_errors(doc: _Doc, op: OperationDefinitionNode) -> list[str]:
    """Shopify's bulk query restrictions (messages as Shopify words them where known)."""
    schema = doc.schema
    state = {"connections": 0, "depth": 0, "top_node": [], "via_nodes": [], "no_id": [], "in_list": False}

    def has_connection(parent: Any, subs: list) -> bool:
        for field_def, nodes in doc.collect(parent, subs, {}).values():
            if field_def is None:
                continue
            named = get_named_type(field_def.type)
            if _is_connection(named) or (not is_leaf_type(named) and has_connection(named, _subs(nodes))):
                return True
        return False

    def selects_id(parent: Any, subs: list) -> bool:
        entry = doc.collect(parent, subs, {}).get("id")
        return bool(entry and entry[1][0].name.value == "id" and entry[0] is not None)

    def walk(parent: Any, subs: list, level: int, in_list: bool) -> None:
        for field_def, nodes in doc.collect(parent, subs, {}).values():
            if field_def is None:
                continue
            name = nodes[0].name.value
            if parent is schema.query_type and name in ("node", "nodes"):
                state["top_node"].append(name)
                continue
            named = get_named_type(field_def.type)
            if is_leaf_type(named):
                continue
            inner = _subs(nodes)
            if not _is_connection(named):
                walk(named, inner, level, in_list or is_list_type(get_nullable_type(field_def.type)))
                continue
            state["connections"] += 1
            state["depth"] = max(state["depth"], level + 1)
            state["in_list"] |= in_list
            for cdef, cnodes in doc.collect(named, inner, {}).values():
                cname = cnodes[0].name.value
                if cname == "nodes":
                    state["via_nodes"].append(name)
                elif cname == "edges":
                    edge = get_named_type(cdef.type)
                    for ndef, nnodes in doc.collect(edge, _subs(cnodes), {}).values():
                        if nnodes[0].name.value != "node":
                            continue
                        node_type, node_subs = get_named_type(ndef.type), _subs(nnodes)
                        if has_connection(node_type, node_subs) and not selects_id(node_type, node_subs):
                            state["no_id"].append(name)
                        walk(node_type, node_subs, level + 1, False)

    walk(schema.query_type, [op.selection_set], 0, False)
    errors = []
    for name in state["top_node"]:
        errors.append(f"Bulk queries cannot contain a top level `{name}` field.")
    if state["via_nodes"]:
        first = state["via_nodes"][0]
        errors.append(f"All connection fields in a bulk query must select their contents using 'edges' > 'node', "
                      f"e.g: '{first} {{ edges {{ node {{'. Selecting via 'nodes' is not supported. Invalid "
                      f"connection fields: '{', '.join(state['via_nodes'])}'.")
    if state["depth"] - 1 > 2:
        errors.append("Bulk queries cannot contain connections with a nesting depth greater than 2.")
    if state["connections"] > 5:
        errors.append("Bulk queries cannot contain more than 5 connections.")
    if state["no_id"]:
        errors.append("The parent 'node' field for a nested connection must select the 'id' field without an "
                      "alias and must be of 'ID' return type. Connection fields without 'id': "
                      f"{', '.join(state['no_id'])}.")
    if state["in_list"]:
        errors.append("Queries that contain a connection field within a list field are not currently supported.")
    if state["connections"] == 0 and not errors:
        errors.append("Bulk queries must contain at least one connection.")
    return errors


class _FlattenPlan:
    """For one bulk document: per (type, selection), which response keys are connections."""

    def __init__(self, doc: _Doc):
        self.doc = doc
        self._memo: dict = {}

    def of(self, parent: Any, subs: list) -> dict:
        key = (parent.name, id(subs))  # `subs` lists are the plan's own, kept alive by it
        hit = self._memo.get(key)
        if hit is not None:
            return hit[0]
        plan: dict = {}
        self._memo[key] = (plan, subs)
        for rkey, (field_def, nodes) in self.doc.collect(parent, subs, {}).items():
            if field_def is None:
                continue
            named = get_named_type(field_def.type)
            if is_leaf_type(named):
                continue
            inner = _subs(nodes)
            if _is_connection(named):
                plan[rkey] = ("conn",) + self._edges(named, inner)
            elif is_list_type(get_nullable_type(field_def.type)):
                plan[rkey] = ("list", named, inner)
            else:
                plan[rkey] = ("obj", named, inner)
        return plan

    def _edges(self, connection: Any, subs: list) -> tuple:
        for ekey, (edef, enodes) in self.doc.collect(connection, subs, {}).items():
            if enodes[0].name.value != "edges":
                continue
            edge = get_named_type(edef.type)
            for nkey, (ndef, nnodes) in self.doc.collect(edge, _subs(enodes), {}).items():
                if nnodes[0].name.value == "node":
                    return ekey, nkey, get_named_type(ndef.type), _subs(nnodes)
        return None, None, None, []


_LEAF_TYPES = (graphql.GraphQLScalarType, graphql.GraphQLEnumType)


def _none_getter(i: int, info: Any, args: dict) -> None:
    _not_served(info)


class _Info:
    """The part of graphql-core's ResolveInfo the resolvers read."""

    __slots__ = ("context", "parent_type", "field_name", "path")

    def __init__(self, context: Any, parent_type: Any, field_name: str, key: str):
        self.context, self.parent_type, self.field_name = context, parent_type, field_name
        self.path = _Key(key)


class _Key:
    __slots__ = ("key",)

    def __init__(self, key: str):
        self.key = key


class _LeanExecutor:
    """Executes an already validated, variable-free document over the same resolvers as
    graphql-core does, several times faster; used for bulk runs (`FakeShopify.bulk_engine`).
    Same semantics for what a bulk query can hold: aliases, fragments with type conditions,
    @skip/@include, __typename, non-null checks (a violation fails the run)."""

    def __init__(self, doc: _Doc, model: _Model, ctx: _Ctx):
        self.doc, self.model, self.ctx, self.schema = doc, model, ctx, doc.schema
        self._memo: dict = {}

    def fields(self, runtime: Any, subs: list) -> list:
        key = (runtime.name, id(subs))
        hit = self._memo.get(key)
        if hit is not None:
            return hit[0]
        collected: OrderedDict[str, list] = OrderedDict()

        def applies(condition: Any) -> bool:
            if condition is None:
                return True
            target = self.schema.get_type(condition.name.value)
            return target is runtime or (target is not None and not isinstance(target, GraphQLObjectType)
                                         and self.schema.is_sub_type(target, runtime))

        def walk(selection_set: Any) -> None:
            for sel in selection_set.selections:
                if not _included(sel, {}):
                    continue
                if isinstance(sel, FieldNode):
                    collected.setdefault(sel.alias.value if sel.alias else sel.name.value, []).append(sel)
                elif isinstance(sel, InlineFragmentNode):
                    if applies(sel.type_condition):
                        walk(sel.selection_set)
                elif isinstance(sel, FragmentSpreadNode):
                    frag = self.doc.fragments.get(sel.name.value)
                    if frag is not None and applies(frag.type_condition):
                        walk(frag.selection_set)

        for selection_set in subs:
            walk(selection_set)
        out = []
        spec = self.model.specs.get(runtime.name)
        for rkey, nodes in collected.items():
            name = nodes[0].name.value
            if name == "__typename":
                out.append((rkey, name, None, {}, [], None, None, False, False))
                continue
            field_def = runtime.fields[name]
            getter = spec.getters.get(name, _none_getter) if spec is not None else None
            nullable = get_nullable_type(field_def.type)
            # the getters already return wire values for scalars and enums (str, int, bool)
            leaf = isinstance(nullable, _LEAF_TYPES)
            out.append((rkey, name, field_def.type, get_argument_values(field_def, nodes[0], {}), _subs(nodes),
                        _Info(self.ctx, runtime, name, rkey), getter, leaf, nullable is not field_def.type))
        self._memo[key] = (out, subs)
        return out

    def execute(self, root_subs: list) -> dict:
        return self.obj(self.schema.query_type, root_subs, None)

    def obj(self, runtime: Any, subs: list, source: Any) -> dict:
        out = {}
        resolve = self.model.resolve
        for key, name, ftype, args, inner, info, getter, leaf, non_null in self.fields(runtime, subs):
            if info is None:
                out[key] = runtime.name
                continue
            if getter is not None and source.__class__ is _Obj:
                raw = getter(source.i, info, args)  # what resolve() would call, without the dispatch
            else:
                raw = resolve(source, info, **args)
            if leaf:
                if raw is None and non_null:
                    raise RuntimeError(f"Cannot return null for non-nullable field {runtime.name}.{name}.")
                out[key] = raw
            else:
                out[key] = self.complete(ftype, inner, raw, runtime.name, name)
        return out

    def complete(self, ftype: Any, inner: list, raw: Any, parent: str, name: str) -> Any:
        if isinstance(ftype, GraphQLNonNull):
            if raw is None:
                raise RuntimeError(f"Cannot return null for non-nullable field {parent}.{name}.")
            ftype = ftype.of_type
        if raw is None:
            return None
        if isinstance(ftype, GraphQLList):
            return [self.complete(ftype.of_type, inner, x, parent, name) for x in raw]
        if isinstance(ftype, _LEAF_TYPES):
            return raw
        runtime = ftype if isinstance(ftype, GraphQLObjectType) else self.schema.get_type(_type_of(raw, None, ftype))
        return self.obj(runtime, inner, raw)


def _flatten(plan: _FlattenPlan, data: dict, root: Any, subs: list, lines: list) -> None:
    """Shopify's JSONL: one line per connection node; a nested connection's nodes get
    `__parentId` = the id of the enclosing connection's node; the rest stays inline."""

    def emit(node_type: Any, node_subs: list, value: dict, parent_id: str | None) -> None:
        children: list = []
        line = strip(node_type, node_subs, value, value.get("id"), children)
        if parent_id is not None:
            line["__parentId"] = parent_id
        lines.append(line)
        for child in children:
            emit(*child)

    def strip(parent: Any, parent_subs: list, value: dict, own_id: Any, children: list) -> dict:
        shape = plan.of(parent, parent_subs)
        out = {}
        for key, v in value.items():
            how = shape.get(key)
            if how is None or v is None:
                out[key] = v
            elif how[0] == "conn":
                _, ekey, nkey, node_type, node_subs = how
                for edge in (v.get(ekey) or []) if ekey else []:
                    node = edge.get(nkey) if edge else None
                    if node is not None:
                        children.append((node_type, node_subs, node, own_id))
            elif how[0] == "list":
                out[key] = [strip(how[1], how[2], x, own_id, children) if isinstance(x, dict) else x for x in v]
            else:
                out[key] = strip(how[1], how[2], v, own_id, children)
        return out

    shape = plan.of(root, subs)
    for key, value in data.items():
        how = shape.get(key)
        if value is None or how is None:
            continue
        if how[0] == "conn":
            _, ekey, nkey, node_type, node_subs = how
            for edge in (value.get(ekey) or []) if ekey else []:
                node = edge.get(nkey) if edge else None
                if node is not None:
                    emit(node_type, node_subs, node, None)
        elif how[0] == "obj":
            emit(how[1], how[2], value, None)


# --------------------------------------------------------------------------- HTTP

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeShopify/1"
    # TCP_NODELAY, as production HTTP servers set it: http.server writes the headers and the
    # body separately, and with Nagle's algorithm the body then waits for the client's delayed
    # ACK (about 40 ms on loopback), a stall on every answer that is nothing of Shopify's.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        self.server.fake._on_post(self)  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self.server.fake._on_get(self)  # type: ignore[attr-defined]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


_DATA_CACHE: "dict[int, tuple[Any, _ShopData]]" = {}
_DATA_LOCK = threading.Lock()


def _shop_data(shop: Any) -> _ShopData:
    """One columnar copy per DemoShop instance (several fakes over one shop share it)."""
    with _DATA_LOCK:
        hit = _DATA_CACHE.get(id(shop))
        if hit is not None and hit[0] is shop:
            return hit[1]
        data = _ShopData(shop)
        _DATA_CACHE.clear()  # keep one shop's data alive, not every shop ever served
        _DATA_CACHE[id(shop)] = (shop, data)
        return data


@dataclass
class _Code:
    scopes: frozenset[str]
    expires_at: float
    used: bool = False


@dataclass
class _Issued:
    scopes: frozenset[str]
    expires_at: float | None  # None: a non-expiring offline token
    expiring: bool = False
    revoked: bool = False

    def valid(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


@dataclass
class _Refresh:
    scopes: frozenset[str]
    expires_at: float
    previous: str | None = None  # the refresh token this one replaced
    revoked: bool = False


def _reported(scopes: Any) -> str:
    """The `scope` Shopify answers: a write scope stands for its read scope too."""
    scopes = set(scopes)
    return ",".join(sorted(s for s in scopes if not (s.startswith("read_") and "write_" + s[5:] in scopes)))


def _oauth_error(code: str, description: str = "") -> dict:
    return {"error": code, "error_description": description or code.replace("_", " ")}


class FakeShopify:
    """Shopify's Admin GraphQL API on 127.0.0.1, serving a `DemoShop`. Starts on construction."""

    def __init__(self, shop: Any, *, token: str = "shpat_test", api_version: str = "2026-10",
                 served_version: str | None = None, bucket_max: float = 1000.0, restore_rate: float = 1000.0,
                 read_all_orders: bool = True, now: datetime | date | None = None, port: int = 0,
                 client_id: str = "fake-client-id", client_secret: str = "fake-client-secret",
                 granted_scopes: set[str] | frozenset[str] | None = None,
                 shop_domain: str = "cleargro-demo.myshopify.com"):
        self.shop = shop
        self.token = token
        # --- OAuth (see the module docstring)
        self.client_id, self.client_secret = client_id, client_secret
        self.granted_scopes = granted_scopes  # None: what the authorize request asks for
        self.shop_domain = shop_domain  # the `shop` of the callbacks it signs
        self.expiring_tokens = False  # True: every code exchange gets an expiring token
        self.client_credentials_allowed = True  # False: `shop_not_permitted` (another organisation's app)
        self.app_scopes = DEFAULT_APP_SCOPES  # what a client credentials token carries
        self.clock: Callable[[], float] = time.time  # move it forward to expire tokens
        self.token_requests: list[str] = []  # grant type of every token request, in order
        self.authorize_requests: list[dict[str, str]] = []  # query of every authorize page
        self._token_faults: deque[str] = deque()
        self._codes: dict[str, _Code] = {}
        self._issued: dict[str, _Issued] = {}
        self._refresh_tokens: dict[str, _Refresh] = {}
        self.api_version = api_version
        self.served_version = served_version or api_version
        self.bucket_max = float(bucket_max)
        self.restore_rate = float(restore_rate)
        self.read_all_orders = read_all_orders
        self.now = now
        self.requests: list[tuple[str, Any]] = []  # (path, parsed JSON body) of every GraphQL POST
        self.downloads: list[str] = []  # paths of bulk file GETs
        self.bulk_script: list[str] | None = None  # for the next bulk operation
        self.bulk_error_code = "INTERNAL_SERVER_ERROR"  # errorCode of a FAILED operation
        self.bulk_partial_data = True  # a FAILED operation offers partialDataUrl (half the lines)
        self.truncate_bulk: bool | str = False  # True/"file": short file; "connection": cut mid-transfer
        self.bulk_engine = "lean"  # or "graphql-core": how bulk runs execute (same output, slower)
        self.bulk_operations: dict[str, _BulkOp] = {}
        self._cutoff_us: int | None = None
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        self._available = self.bucket_max
        self._refilled = time.monotonic()
        self._validated: OrderedDict[str, tuple] = OrderedDict()
        self._stopping = threading.Event()
        self._tmp: Path | None = None  # made by the first bulk operation, removed by stop()
        # Benchmarks: Shopify builds a bulk file on its own servers, so a benchmark has the fake
        # build each file once and serve it again for the same query (and cutoff).
        self.cache_bulk = False
        # Benchmarks: an operation's status follows its work as at Shopify (RUNNING until its
        # file is built, then COMPLETED) rather than the per-poll script the tests drive.
        self.bulk_status_follows_work = False
        # Tests: the download of a bulk operation whose query holds `stall_query` stops halfway
        # until the fake stops; `download_stalled` is set once one has.
        self.stall_query: str | None = None
        self.download_stalled = threading.Event()
        self._bulk_files: dict[tuple, _BulkOp] = {}
        self.schema = admin_schema()
        self.data = _shop_data(shop)
        self.model = _Model(self.data, self)
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-shopify", daemon=True)
        self._thread.start()
        self._stopped = False

    # ---- public API
    @property
    def graphql_url(self) -> str:
        return f"{self.url}/admin/api/{self.api_version}/graphql.json"

    def __enter__(self) -> "FakeShopify":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Shut the server down, wait for bulk runs, delete the temp files."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        for op in list(self.bulk_operations.values()):
            if op.thread is not None:
                op.thread.join(timeout=30)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def set_cutoff(self, when: datetime | date | None) -> None:
        """Only rows whose cursor column (updated_at, order_updated_at) is before `when` exist."""
        self._cutoff_us = _to_us(when)

    @property
    def cutoff(self) -> datetime | None:
        if self._cutoff_us is None:
            return None
        return datetime.fromtimestamp(self._cutoff_us // US, timezone.utc).replace(
            microsecond=self._cutoff_us % US)

    def fail_next(self, *faults: str) -> None:
        """Queue faults for the next GraphQL requests, one each: throttled, http429, http500,
        http503, drop (close the socket unanswered), unauthorized."""
        unknown = set(faults) - FAULTS
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {sorted(FAULTS)}")
        with self._lock:
            self._faults.extend(faults)

    @property
    def currently_available(self) -> float:
        with self._lock:
            self._refill()
            return self._available

    def set_available(self, points: float) -> None:
        with self._lock:
            self._refill()
            self._available = float(points)

    def queries(self) -> list[str]:
        """The query documents received, in order."""
        return [body.get("query", "") for _, body in self.requests if isinstance(body, dict)]

    # ---- HTTP
    def _send(self, handler: _Handler, status: int, payload: Any, headers: dict | None = None,
              api: bool = True) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        if api:
            handler.send_header("X-Shopify-API-Version", self.served_version)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _read_body(handler: _Handler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(handler.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    handler.rfile.readline()
                    break
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
            return b"".join(chunks)
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    @staticmethod
    def _drop(handler: _Handler) -> None:
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _on_post(self, handler: _Handler) -> None:
        path = handler.path.split("?", 1)[0]
        raw = self._read_body(handler)
        if path == TOKEN_PATH:
            self._token_endpoint(handler, raw)
            return
        if not GRAPHQL_PATH.match(path):
            self._send(handler, 404, {"errors": "Not Found"}, api=False)
            return
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            body = raw.decode("utf-8", "replace")
        self.requests.append((path, body))
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault == "drop":
            self._drop(handler)
            return
        if fault == "unauthorized" or not self.accepts(handler.headers.get("X-Shopify-Access-Token")):
            self._send(handler, 401, UNAUTHORIZED)
            return
        if fault == "http429":
            self._send(handler, 429, HTTP429, {"Retry-After": "1"})
            return
        if fault in ("http500", "http503"):
            status = int(fault[4:])
            self._send(handler, status, {"errors": "Internal Server Error" if status == 500
                                         else "Service Unavailable"})
            return
        try:
            status, payload = self._graphql(body, forced_throttle=fault == "throttled")
        except Exception as exc:  # a bug in the fake: say so loudly, as a 500
            status, payload = 500, {"errors": f"fake_shopify internal error: {exc!r}"}
        self._send(handler, status, payload)

    def _on_get(self, handler: _Handler) -> None:
        path = handler.path.split("?", 1)[0]
        if path == AUTHORIZE_PATH:
            self._authorize(handler)
            return
        match = BULK_PATH.match(path)
        op, size, partial = None, 0, False
        if match:
            token = match.group(1)
            partial = token.endswith("-partial")
            token = token.removesuffix("-partial")
            op = next((o for o in list(self.bulk_operations.values()) if o.token == token), None)
        if op is None or op.path is None or not op.path.exists():
            self._send(handler, 404, {"errors": "Not Found"}, api=False)
            return
        self.downloads.append(path)
        if partial:
            size = announced = op.partial_size
        else:
            size = announced = op.file_size
            if op.truncate in (True, "file"):
                size = announced = op.truncated_size
            elif op.truncate == "connection":
                size = op.truncated_size
        handler.send_response(200)
        handler.send_header("Content-Type", "application/jsonl")
        handler.send_header("Content-Length", str(announced))
        handler.end_headers()
        stall = self.stall_query is not None and self.stall_query in op.query
        with open(op.path, "rb") as f:
            left = size
            while left > 0:
                chunk = f.read(min(65536, left))
                if not chunk:
                    break
                if stall and left - len(chunk) < size // 2:
                    # A download that hangs halfway (a test kills the loader meanwhile).
                    handler.wfile.write(chunk[:max(0, left - size // 2)])
                    handler.wfile.flush()
                    self.download_stalled.set()
                    self._stopping.wait()
                    return
                handler.wfile.write(chunk)
                left -= len(chunk)
        if size < announced:
            handler.wfile.flush()
            self._drop(handler)

    # ---- OAuth
    def fail_next_token(self, *faults: str) -> None:
        """Queue faults for the next token requests, one each: unauthorized (401), forbidden
        (403), http500, invalid_grant (400)."""
        unknown = set(faults) - TOKEN_FAULTS
        if unknown:
            raise ValueError(f"unknown token faults {sorted(unknown)}; known: {sorted(TOKEN_FAULTS)}")
        with self._lock:
            self._token_faults.extend(faults)

    def accepts(self, token: str | None) -> bool:
        """Whether the GraphQL endpoint takes `token` now."""
        if not token:
            return False
        if token == self.token:
            return True
        with self._lock:
            issued = self._issued.get(token)
            return issued is not None and issued.valid(self.clock())

    def uninstall(self) -> None:
        """The merchant uninstalled the app: every token it was issued stops working."""
        with self._lock:
            for issued in self._issued.values():
                issued.revoked = True
            for refresh in self._refresh_tokens.values():
                refresh.revoked = True

    def issued_tokens(self) -> dict[str, frozenset[str]]:
        """Access tokens issued and valid now, with their scopes."""
        now = self.clock()
        with self._lock:
            return {t: i.scopes for t, i in self._issued.items() if i.valid(now)}

    def sign(self, params: dict[str, str]) -> str:
        """The `hmac` Shopify sends with `params` (every other parameter, sorted `k=v&k=v`)."""
        message = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "hmac")
        return hmac.new(self.client_secret.encode(), message.encode(), hashlib.sha256).hexdigest()

    def _html(self, handler: _Handler, status: int, body: str) -> None:
        data = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _authorize(self, handler: _Handler) -> None:
        """The consent page: its link is what the merchant's click on "Install app" does."""
        query = dict(urllib.parse.parse_qsl(handler.path.partition("?")[2], keep_blank_values=True))
        self.authorize_requests.append(query)
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id:
            self._html(handler, 400, "<!doctype html><title>Error</title><h1>Invalid client_id</h1>")
            return
        if urllib.parse.urlsplit(redirect).scheme not in ("http", "https"):
            self._html(handler, 400, "<!doctype html><title>Error</title><h1>Invalid redirect_uri</h1>")
            return
        asked = frozenset(s for s in query.get("scope", "").split(",") if s)
        granted = asked if self.granted_scopes is None else frozenset(self.granted_scopes)
        code = "fakecode_" + secrets.token_hex(16)
        with self._lock:
            self._codes[code] = _Code(scopes=granted, expires_at=self.clock() + CODE_TTL_S)
        params = {"code": code, "shop": self.shop_domain, "state": query.get("state", ""),
                  "timestamp": str(int(self.clock()))}
        params["hmac"] = self.sign(params)
        target = f"{redirect}{'&' if '?' in redirect else '?'}{urllib.parse.urlencode(params)}"
        self._html(handler, 200, (
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Install app</title></head>"
            f"<body><h1>Install app on {html.escape(self.shop_domain)}</h1>"
            f"<p id=\"scopes\">{html.escape(', '.join(sorted(granted)))}</p>"
            f"<a id=\"install\" href=\"{html.escape(target)}\">Install app</a></body></html>"))

    def _token_endpoint(self, handler: _Handler, raw: bytes) -> None:
        if "json" in (handler.headers.get("Content-Type") or ""):
            try:
                params = {k: str(v) for k, v in json.loads(raw or b"{}").items()}
            except (ValueError, AttributeError):
                params = {}
        else:
            params = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        grant = params.get("grant_type") or "authorization_code"
        self.token_requests.append(grant)
        with self._lock:
            fault = self._token_faults.popleft() if self._token_faults else None
        if fault in ("unauthorized", "forbidden"):
            self._send(handler, 401 if fault == "unauthorized" else 403, UNAUTHORIZED, api=False)
            return
        if fault == "http500":
            self._send(handler, 500, {"errors": "Internal Server Error"}, api=False)
            return
        if fault == "invalid_grant":
            self._send(handler, 400, _oauth_error("invalid_grant"), api=False)
            return
        if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
            self._send(handler, 401, _oauth_error("invalid_client"), api=False)
            return
        now = self.clock()
        with self._lock:
            if grant == "authorization_code":
                code = self._codes.get(params.get("code", ""))
                if code is None or code.used or code.expires_at <= now:
                    status, payload = 400, _oauth_error("invalid_request", "The authorization code was "
                                                        "not found or was already used")
                else:
                    code.used = True
                    expiring = self.expiring_tokens or params.get("expiring") == "1"
                    status, payload = 200, self._issue(code.scopes, expiring, now)
            elif grant == "refresh_token":
                refresh = self._refresh_tokens.get(params.get("refresh_token", ""))
                if refresh is None or refresh.revoked or refresh.expires_at <= now:
                    status, payload = 400, _oauth_error("invalid_grant")
                else:
                    if refresh.previous is not None:  # its predecessor was kept for this first use
                        self._refresh_tokens[refresh.previous].revoked = True
                    status, payload = 200, self._issue(refresh.scopes, True, now,
                                                       previous=params["refresh_token"])
            elif grant == "client_credentials":
                if not self.client_credentials_allowed:
                    status, payload = 400, _oauth_error("shop_not_permitted")
                else:
                    token = "shpat_" + secrets.token_hex(16)
                    self._issued[token] = _Issued(frozenset(self.app_scopes), now + CLIENT_CREDENTIALS_TTL_S)
                    status, payload = 200, {"access_token": token, "scope": _reported(self.app_scopes),
                                            "expires_in": CLIENT_CREDENTIALS_TTL_S}
            else:
                status, payload = 400, _oauth_error("unsupported_grant_type")
        self._send(handler, status, payload, api=False)

    def _issue(self, scopes: frozenset[str], expiring: bool, now: float, *,
               previous: str | None = None) -> dict:
        """A new offline token (with the lock held). Only one expiring token of the app is
        valid at a time: issuing one revokes the others."""
        token = "shpat_" + secrets.token_hex(16)
        answer: dict[str, Any] = {"access_token": token, "scope": _reported(scopes)}
        if not expiring:
            self._issued[token] = _Issued(scopes, None)
            return answer
        for issued in self._issued.values():
            if issued.expiring:
                issued.revoked = True
        self._issued[token] = _Issued(scopes, now + EXPIRING_TTL_S, expiring=True)
        refresh = "shprt_" + secrets.token_hex(16)
        self._refresh_tokens[refresh] = _Refresh(scopes, now + REFRESH_TTL_S, previous=previous)
        answer.update(expires_in=EXPIRING_TTL_S, refresh_token=refresh,
                      refresh_token_expires_in=REFRESH_TTL_S)
        return answer

    # ---- GraphQL
    def _refill(self) -> None:
        now = time.monotonic()
        self._available = min(self.bucket_max, self._available + (now - self._refilled) * self.restore_rate)
        self._refilled = now

    def _cost(self, requested: int, actual: int | None) -> dict:
        return {"requestedQueryCost": requested, "actualQueryCost": actual,
                "throttleStatus": {"maximumAvailable": float(self.bucket_max),
                                   "currentlyAvailable": int(self._available),
                                   "restoreRate": float(self.restore_rate)}}

    def _throttled(self, requested: int) -> dict:
        return {"errors": [{"message": "Throttled",
                            "extensions": {"code": "THROTTLED", "documentation": RATE_LIMIT_DOCS}}],
                "extensions": {"cost": self._cost(requested, None)}}

    def _prepare(self, query: str) -> tuple[_Doc | None, list]:
        """Parse and validate (cached per query text); errors in Shopify's shape."""
        with self._lock:
            hit = self._validated.get(query)
            if hit is not None:
                self._validated.move_to_end(query)
                return hit
        try:
            document = graphql.parse(query)
        except GraphQLError as exc:
            result: tuple = (None, [{"message": exc.message,
                                     "locations": [{"line": loc.line, "column": loc.column}
                                                   for loc in exc.locations or ()]}])
        else:
            errors = graphql.validate(self.schema, document)
            if errors:
                paths = _node_paths(document)
                result = (None, [_shopify_error(e, paths) for e in errors])
            else:
                result = (_Doc(self.schema, document), [])
        with self._lock:
            self._validated[query] = result
            while len(self._validated) > 256:
                self._validated.popitem(last=False)
        return result

    def _ctx(self, bulk: bool = False) -> _Ctx:
        cutoff = self._cutoff_us
        orders_min = None
        if not self.read_all_orders:
            now = _to_us(self.now)
            if now is None:
                O = self.data.orders
                created = O.created if cutoff is None else O.created[O.cursor_us < cutoff]
                now = int(created.max()) if len(created) else 0
            orders_min = now - 60 * DAY_US
        return _Ctx(cutoff, orders_min, bulk)

    def _graphql(self, body: Any, forced_throttle: bool = False) -> tuple[int, dict]:
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, str) or not query.strip():
            return 400, {"errors": {"query": "Required parameter missing or invalid"}}
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            return 400, {"errors": {"variables": "Invalid variables"}}
        operation_name = body.get("operationName") or None
        doc, errors = self._prepare(query)
        if doc is None:
            if forced_throttle:
                with self._lock:
                    self._refill()
                    return 200, self._throttled(0)
            return 200, {"errors": errors}
        op = graphql.get_operation_ast(doc.document, operation_name)
        if op is None:
            message = (f"No operation named \"{operation_name}\"" if operation_name
                       else "An operation name is required")
            return 200, {"errors": [{"message": message}]}
        coerced = get_variable_values(self.schema, op.variable_definitions or [], variables)
        if isinstance(coerced, list):
            return 200, {"errors": [e.formatted for e in coerced]}
        requested = requested_cost(doc, op, coerced)
        if requested > MAX_QUERY_COST:
            return 200, {"errors": [{
                "message": (f"Query cost is {requested}, which exceeds the single query max cost limit "
                            f"({MAX_QUERY_COST}).\n\nSee https://shopify.dev/concepts/about-apis/rate-limits for "
                            "more information on how the\ncost of a query is calculated.\n\nTo query larger "
                            "amounts of data with fewer limits, bulk operations should be used instead.\nSee "
                            "https://shopify.dev/api/usage/bulk-operations/queries for usage details.\n"),
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_QUERY_COST,
                               "documentation": RATE_LIMIT_DOCS}}]}
        with self._lock:
            self._refill()
            if forced_throttle or requested > self._available:
                return 200, self._throttled(requested)
            self._available -= requested  # reserved; the unused part is given back below
        ctx = self._ctx()
        result = graphql.execute_sync(self.schema, doc.document, None, ctx, coerced, operation_name,
                                      field_resolver=self.model.resolve, type_resolver=_type_of)
        actual = min(requested, actual_cost(doc, op, coerced, result.data))
        with self._lock:
            self._refill()
            self._available = min(self.bucket_max, self._available + requested - actual)
            cost = self._cost(requested, actual)
        payload: dict[str, Any] = {}
        if result.errors:
            payload["errors"] = [e.formatted for e in result.errors]
        payload["data"] = result.data
        payload["extensions"] = {"cost": cost}
        return 200, payload

    # ---- bulk operations
    def _bulk_run(self, query: str, group: bool) -> dict:
        def refuse(messages: list[str], code: str = "INVALID", field: tuple | None = ("query",)) -> dict:
            return {"bulkOperation": None,
                    "userErrors": [{"field": field and list(field), "message": m, "code": code}
                                   for m in messages]}

        doc, errors = self._prepare(query)
        if doc is None:
            return refuse([f"Invalid bulk query: {e['message']}" for e in errors])
        ops = [d for d in doc.document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(ops) != 1 or ops[0].operation.value != "query":
            return refuse(["Invalid operation type. Only `query` operations are supported."
                           if len(ops) == 1 else "Bulk queries must contain exactly one operation."])
        problems = _bulk_user_errors(doc, ops[0])
        if problems:
            return refuse(problems)
        with self._lock:
            running = sum(o.status in BULK_RUNNING for o in self.bulk_operations.values())
            if running >= BULK_RUNNING_MAX:
                return refuse(["Bulk operations limit reached. Please try again later."],
                              code="LIMIT_REACHED", field=None)
            script = list(self.bulk_script or DEFAULT_BULK_SCRIPT)
            self.bulk_script = None
            unknown = set(script) - BULK_STATUSES
            if unknown or not script:
                raise GraphQLError(f"fake_shopify: bad bulk_script {script}")
            op = _BulkOp(number=len(self.bulk_operations) + 4_000_001, query=query, script=script, group=group,
                         truncate=self.truncate_bulk, error_code=self.bulk_error_code,
                         partial=self.bulk_partial_data, created_at=_iso(time.time_ns() // 1000))
            self.bulk_operations[op.gid] = op
        ctx = self._ctx(bulk=True)
        op.thread = threading.Thread(target=self._bulk_generate, args=(op, doc, ops[0], ctx),
                                     name=f"fake-shopify-bulk-{op.number}", daemon=True)
        op.thread.start()
        return {"bulkOperation": self._bulk_fields(op), "userErrors": []}

    def _bulk_generate(self, op: _BulkOp, doc: _Doc, opdef: OperationDefinitionNode, ctx: _Ctx) -> None:
        key = (op.query, op.group, self._cutoff_us)
        built = self._bulk_files.get(key) if self.cache_bulk else None
        if built is not None:
            for name in ("path", "object_count", "root_count", "file_size", "partial_size",
                         "partial_count", "partial_roots", "truncated_size"):
                setattr(op, name, getattr(built, name))
            op.done.set()
            return
        try:
            plan = _FlattenPlan(doc)
            root_subs = [opdef.selection_set]
            lean = _LeanExecutor(doc, self.model, ctx) if self.bulk_engine == "lean" else None
            with self._lock:
                if self._tmp is None:
                    self._tmp = Path(tempfile.mkdtemp(prefix="fake_shopify_"))
            target = self._tmp / f"{op.token}.jsonl"
            offsets = array("q")
            position = total = roots = 0
            with open(target, "wb") as f:
                block = 0
                while True:
                    if self._stopping.is_set():
                        raise RuntimeError("fake stopped")
                    ctx.bulk_slice = (block * BULK_ROOTS_PER_BLOCK, (block + 1) * BULK_ROOTS_PER_BLOCK)
                    ctx.bulk_more = False
                    if lean is not None:
                        data = lean.execute(root_subs)
                    else:
                        result = graphql.execute_sync(self.schema, doc.document, None, ctx, {}, None,
                                                      field_resolver=self.model.resolve, type_resolver=_type_of)
                        if result.errors:
                            raise RuntimeError("; ".join(e.message for e in result.errors[:3]))
                        data = result.data or {}
                    lines: list[dict] = []
                    _flatten(plan, data, self.schema.query_type, root_subs, lines)
                    if not op.group:
                        random.Random(f"{op.query}:{block}").shuffle(lines)  # same query, same file
                    for line in lines:
                        encoded = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                        offsets.append(position)
                        f.write(encoded)
                        position += len(encoded)
                        total += 1
                        roots += "__parentId" not in line
                    block += 1
                    if not ctx.bulk_more:
                        break
            offsets.append(position)
            half = total // 2
            op.path, op.object_count, op.root_count, op.file_size = target, total, roots, position
            op.partial_size, op.partial_count = offsets[half], half
            op.partial_roots = roots // 2
            if total:
                line_length = offsets[half + 1] - offsets[half]
                op.truncated_size = offsets[half] + max(1, line_length // 2)
            if self.cache_bulk:
                self._bulk_files[key] = op
        except Exception as exc:
            op.failure = f"{type(exc).__name__}: {exc}"
        finally:
            op.done.set()

    def _bulk_fields(self, op: _BulkOp) -> dict:
        status = op.status
        count = {"COMPLETED": op.object_count, "EXPIRED": op.object_count, "FAILED": op.partial_count}
        roots = {"COMPLETED": op.root_count, "EXPIRED": op.root_count, "FAILED": op.partial_roots}
        partial = status == "FAILED" and op.partial and op.path is not None
        return {
            "__typename": "BulkOperation", "id": op.gid, "status": status, "type": "QUERY", "query": op.query,
            "errorCode": op.error_code if status == "FAILED" else None,
            "createdAt": op.created_at, "completedAt": op.completed_at,
            "objectCount": str(count.get(status, 0)), "rootObjectCount": str(roots.get(status, 0)),
            "fileSize": (str(op.file_size) if status == "COMPLETED" else
                         str(op.partial_size) if partial else None),
            "url": f"{self.url}/bulk/{op.token}.jsonl" if status == "COMPLETED" else None,
            "partialDataUrl": f"{self.url}/bulk/{op.token}-partial.jsonl" if partial else None,
        }

    def _bulk_advance(self, op: _BulkOp, ctx: _Ctx) -> None:
        """One poll: the next status of the script (once per request)."""
        if op.gid in ctx.polled:
            return
        ctx.polled.add(op.gid)
        if op.canceled:
            op.status = "CANCELED"
        elif self.bulk_status_follows_work:
            op.status = "COMPLETED" if op.done.is_set() else "RUNNING"
        else:
            op.status = op.script[min(op.polls, len(op.script) - 1)]
            op.polls += 1
        if op.status in ("COMPLETED", "FAILED"):
            op.done.wait()
            if op.failure is not None and op.status == "COMPLETED":
                op.status, op.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
        if op.status in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED") and op.completed_at is None:
            op.completed_at = _iso(time.time_ns() // 1000)

    def _bulk_view(self, gid: str, ctx: _Ctx) -> dict | None:
        kind, _, _ = _parse_gid(gid)
        op = self.bulk_operations.get(gid) if kind == "BulkOperation" else None
        if op is None:
            return None
        self._bulk_advance(op, ctx)
        return self._bulk_fields(op)

    def _bulk_current(self, ctx: _Ctx) -> dict | None:
        if not self.bulk_operations:
            return None
        op = list(self.bulk_operations.values())[-1]
        self._bulk_advance(op, ctx)
        return self._bulk_fields(op)

    def _bulk_cancel(self, gid: str, ctx: _Ctx) -> dict:
        op = self.bulk_operations.get(gid)
        if op is None:
            return {"bulkOperation": None,
                    "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}]}
        if op.status in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED"):
            return {"bulkOperation": self._bulk_fields(op),
                    "userErrors": [{"field": None, "message": f"A bulk operation cannot be canceled when it is "
                                                              f"{op.status.lower()}"}]}
        op.canceled = True
        op.status = "CANCELING"
        return {"bulkOperation": self._bulk_fields(op), "userErrors": []}
