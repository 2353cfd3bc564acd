"""Shopify Admin REST response bodies -> contract-shaped Arrow tables.

Each `parse_*` takes one parsed JSON body and returns `{table_name: pa.Table}`
with the contract's columns and types, before minimisation: shopper ids are
still raw (`customer_id` on orders, `id` on customers) and `minimise` turns
them into pseudonyms. Only the contract's fields are picked from each record,
so PII never even reaches Arrow here; `minimise` is still the real allowlist.

Schema tolerant: a missing field is null, an unknown field is ignored. A
value that does not parse as its column's type raises `FieldError`.
"""

from __future__ import annotations

from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline.sources import contract

# Key under which file_drop's line-tracking JSON decoder stores each object's
# line; carried into `SOURCE_LINE` columns so errors can name the line.
LINE_KEY = "\x00line"
SOURCE_LINE = "_source_line"

_REASONS = {
    "int": "is not an integer", "float": "is not a number", "bool": "is not a boolean",
    "decimal": "is not a decimal amount with at most 2 decimals",
    "timestamp": "is not a timestamp with a UTC offset", "date": "is not a date (YYYY-MM-DD or YYYYMMDD)",
}


class ShapeError(ValueError):
    """The body is not the shape the endpoint returns (e.g. no `orders` list)."""


class FieldError(ValueError):
    """A value that does not parse as its column's type.

    `row` indexes the table being built; `line` is the source line when known.
    The message quotes only the offending value (never a whole record).
    """

    def __init__(self, column: str, value: Any, reason: str, row: int, line: int | None = None,
                 table: str = ""):
        self.column, self.value, self.reason, self.row, self.line, self.table = (
            column, value, reason, row, line, table)
        super().__init__(f"{table + '.' if table else ''}{self.detail} (row {row + 1})")

    @property
    def detail(self) -> str:
        shown = self.value if len(str(self.value)) <= 60 else str(self.value)[:57] + "..."
        quoted = "" if self.value is None else f" {shown!r}"
        return f"{self.column}{quoted} {self.reason}"


def _kind(typ: pa.DataType) -> str:
    for kind, test in (("int", pa.types.is_integer), ("float", pa.types.is_floating),
                       ("bool", pa.types.is_boolean), ("decimal", pa.types.is_decimal),
                       ("timestamp", pa.types.is_timestamp), ("date", pa.types.is_date)):
        if test(typ):
            return kind
    return "string"


def _cast(values: pa.Array, typ: pa.DataType) -> pa.Array:
    if pa.types.is_date(typ):
        # GA4 reports dates as YYYYMMDD; files written by hand use YYYY-MM-DD.
        compact = pc.strptime(values, format="%Y%m%d", unit="s", error_is_null=True)
        iso = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True)
        parsed = pc.coalesce(compact, iso)
        if parsed.null_count != values.null_count:
            raise pa.ArrowInvalid("unparsed date")
        return parsed.cast(typ)
    return values.cast(typ)


def _first_bad(values: pa.Array, typ: pa.DataType) -> int:
    """Index of the first value that does not cast, by bisection (each step vectorised)."""
    lo, hi = 0, len(values)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            _cast(values.slice(lo, mid - lo), typ)
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo


def parse_strings(values: pa.Array, typ: pa.DataType, column: str) -> pa.Array:
    """Cast a string array to `typ`; raise FieldError at the first value that does not parse.

    Values are trimmed and empty strings are null, so ` 12` and `` both load.
    """
    if _kind(typ) == "string":
        return values.cast(typ)
    values = pc.utf8_trim_whitespace(values)
    values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    try:
        return _cast(values, typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        row = _first_bad(values, typ)
        raise FieldError(column, values[row].as_py(), _REASONS[_kind(typ)], row) from None


def as_text(value: Any, column: str, typ: pa.DataType, row: int) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # shortest round-trip form: 195.67 stays 195.67
    kind = "an object" if isinstance(value, dict) else "a list"
    # Not quoted: a nested object could be a whole address.
    raise FieldError(column, None, f"is {kind}, expected {_kind(typ)}", row)


def _column(rows: list[dict], column: str, typ: pa.DataType) -> pa.Array:
    texts = [as_text(r.get(column), column, typ, i) for i, r in enumerate(rows)]
    return parse_strings(pa.array(texts, pa.string()), typ, column)


def _build(rows: list[dict], schema: pa.Schema, table: str) -> pa.Table:
    """Rows (dicts) -> one Arrow table of `schema`, converted column by column."""
    try:
        arrays = [_column(rows, f.name, f.type) for f in schema]
    except FieldError as error:
        error.table, error.line = table, rows[error.row].get(SOURCE_LINE)
        error.args = (f"{table}.{error.detail} (row {error.row + 1})",)
        raise
    out = pa.Table.from_arrays(arrays, schema=schema)
    if any(r.get(SOURCE_LINE) is not None for r in rows):
        out = out.append_column(SOURCE_LINE, pa.array([r.get(SOURCE_LINE) for r in rows], pa.int64()))
    return out


def input_schema(raw: contract.RawTable) -> pa.Schema:
    """The contract schema before minimisation: raw shopper ids instead of pseudonyms."""
    raw_of = {pseudo: src for src, pseudo in raw.pseudonymised}
    return pa.schema([pa.field(raw_of[f.name], pa.int64()) if f.name in raw_of else f
                      for f in raw.schema])


def build_shop_table(name: str, rows: list[dict]) -> pa.Table:
    """Rows of one `raw_shop` table (contract column names, API values) -> Arrow, before
    minimisation; a value that does not parse raises FieldError naming the column."""
    return _build(rows, input_schema(contract.table(contract.SHOP, name)), name)


def _dig(obj: Any, *path: str) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _row(record: dict, **computed: Any) -> dict:
    """The record itself (unknown fields are never read) plus computed fields and its line."""
    return {**record, **computed, SOURCE_LINE: record.get(LINE_KEY)}


def _records(body: Any, key: str) -> list[dict]:
    items = body.get(key) if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise ShapeError(f'expected {{"{key}": [...]}} or a bare list of records')
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ShapeError(f"'{key}' item {i + 1} is not an object")
    return items


def _children(record: dict, key: str) -> list[dict]:
    items = record.get(key)
    return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []


def parse_products(body: Any) -> dict[str, pa.Table]:
    products = _records(body, "products")
    variants = [_row(v, product_id=v.get("product_id", p.get("id")))  # nested: the parent is known
                for p in products for v in _children(p, "variants")]
    return {"products": build_shop_table("products", [_row(p) for p in products]),
            "product_variants": build_shop_table("product_variants", variants)}


def _discount_codes(order: dict) -> str | None:
    codes = [str(c["code"]) for c in _children(order, "discount_codes") if c.get("code")]
    return ",".join(codes) or None


def parse_orders(body: Any) -> dict[str, pa.Table]:
    orders = _records(body, "orders")
    rows, items, refunds = [], [], []
    for o in orders:
        rows.append(_row(o, customer_id=_dig(o, "customer", "id"),
                         total_shipping_price=_dig(o, "total_shipping_price_set", "shop_money", "amount"),
                         discount_codes=_discount_codes(o)))
        updated = o.get("updated_at")
        items += [_row(li, order_id=o.get("id"), order_updated_at=updated)
                  for li in _children(o, "line_items")]
        for refund in _children(o, "refunds"):
            refunds += [_row(rl, refund_id=refund.get("id"), order_id=o.get("id"),
                             created_at=refund.get("created_at"), order_updated_at=updated,
                             subtotal=_dig(rl, "subtotal_set", "shop_money", "amount") or rl.get("subtotal"))
                        for rl in _children(refund, "refund_line_items")]
    return {"orders": build_shop_table("orders", rows),
            "order_line_items": build_shop_table("order_line_items", items),
            "order_refund_line_items": build_shop_table("order_refund_line_items", refunds)}


def _simple(key: str, table: str) -> Callable[[Any], dict[str, pa.Table]]:
    def parse(body: Any) -> dict[str, pa.Table]:
        return {table: build_shop_table(table, [_row(r) for r in _records(body, key)])}
    parse.__doc__ = f"`{{'{key}': [...]}}` (or a bare list) -> `{table}`."
    return parse


parse_inventory_levels = _simple("inventory_levels", "inventory_levels")
parse_inventory_items = _simple("inventory_items", "inventory_items")
parse_locations = _simple("locations", "locations")
_parse_customer_list = _simple("customers", "customers")


def parse_customers(body: Any) -> dict[str, pa.Table]:
    """`{"customer": {...}}` (one customer) or `{"customers": [...]}` -> `customers`."""
    if isinstance(body, dict) and "customer" in body:
        if not isinstance(body["customer"], dict):
            raise ShapeError("'customer' is not an object")
        return _parse_customer_list([body["customer"]])
    return _parse_customer_list(body)
