"""Arrow column builders (vectorised) and the schemas the demo delivers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline.sources.contract import MONEY, TS, table

US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000

# The shop tables that carry shopper ids arrive as a real Shopify API would send
# them: minimise.py later drops or pseudonymises these raw identifying columns.
RAW_IDENTIFIERS = {
    ("raw_shop", "orders"): [("customer_id", pa.int64()), ("email", pa.string()),
                             ("phone", pa.string()), ("browser_ip", pa.string())],
    ("raw_app", "app_events"): [("user_id", pa.string())],
    ("raw_shop", "customers"): [("id", pa.int64()), ("email", pa.string()),
                                ("first_name", pa.string()), ("last_name", pa.string()),
                                ("phone", pa.string())],
}


def delivered_schema(dataset: str, name: str) -> pa.Schema:
    """Contract schema minus the pseudonym columns, plus the raw identifying columns."""
    raw = table(dataset, name)
    pseudo = {p for _, p in raw.pseudonymised}
    fields = [f for f in raw.schema if f.name not in pseudo]
    return pa.schema(fields + [pa.field(n, t) for n, t in RAW_IDENTIFIERS.get((dataset, name), [])])


def money(cents: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """decimal128(18, 2) straight from integer cents (Arrow stores the unscaled integer)."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63  # two's complement sign extension into the high word
    validity, nulls = _validity(valid)
    return pa.Array.from_buffers(MONEY, len(cents), [validity, pa.py_buffer(words)], null_count=nulls)


def _validity(valid):
    if valid is None or valid.all():
        return None, 0
    return pa.array(np.asarray(valid, dtype=bool)).buffers()[1], int((~valid).sum())


def ts(us: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else ~np.asarray(valid, dtype=bool)
    return pa.array(np.asarray(us, dtype=np.int64), type=TS, mask=mask)


def dates(days: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.date32())


def strings(values, index: np.ndarray | None = None, valid: np.ndarray | None = None) -> pa.Array:
    """A string column, optionally looked up from a small vocabulary by index."""
    arr = values if isinstance(values, pa.Array) else pa.array(list(values), pa.string())
    if index is not None:
        arr = arr.take(pa.array(np.asarray(index, dtype=np.int64)))
    if valid is not None and not np.asarray(valid).all():
        arr = pc.if_else(pa.array(np.asarray(valid, dtype=bool)), arr, pa.scalar(None, pa.string()))
    return arr


def int_str(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def join(*parts, sep: str = "") -> pa.Array:
    """Element-wise string concatenation of arrays and scalar strings."""
    return pc.binary_join_element_wise(*parts, sep)


def build(dataset: str, name: str, columns: dict[str, pa.Array]) -> pa.Table:
    """A table in the delivered schema's column order; missing/extra columns are a bug."""
    schema = delivered_schema(dataset, name)
    if set(columns) != set(schema.names):
        raise AssertionError(f"{dataset}.{name}: columns {sorted(set(columns) ^ set(schema.names))}")
    return pa.Table.from_arrays([columns[f.name].cast(f.type) for f in schema], schema=schema)
