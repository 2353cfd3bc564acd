"""Data minimisation: the last step before anything touches disk.

`minimise` keeps exactly the contract's columns (an allowlist: whatever else
an API or a file carries, such as emails, addresses, IPs or payment details,
is dropped) and replaces shopper identifiers with keyed pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.sources.contract import RawTable


class MinimisationError(CleargroError, ValueError):
    """Data that cannot be reduced to the contract; names the table and column, never a value."""


Pseudonymise = Callable[[pa.Array], pa.Array]


def _values(data: pa.Table, name: str) -> pa.Array | None:
    if name not in data.column_names:
        return None
    return data.column(name).combine_chunks()


def _cast(raw: RawTable, name: str, values: pa.Array, typ: pa.DataType) -> pa.Array:
    try:
        return values.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        # Arrow's own message quotes the value; ours must be safe to print.
        raise MinimisationError(f"{raw.dataset}.{raw.name}: column {name} ({values.type}) "
                         f"cannot be cast to {typ}") from None


def _pseudonyms(raw: RawTable, source: str, values: pa.Array, pseudonymise: Pseudonymise) -> pa.Array:
    ids = _cast(raw, source, values, pa.string())
    out = pseudonymise(ids)
    if len(out) != len(ids) or not pa.types.is_string(out.type):
        raise MinimisationError(f"{raw.dataset}.{raw.name}: pseudonymiser returned {len(out)} values of "
                         f"{out.type} for {len(ids)} identifiers")
    # A missing shopper id stays missing: never a pseudonym of "null".
    return pc.if_else(pc.is_null(ids), pa.scalar(None, pa.string()), out)


def minimise(raw: RawTable, data: pa.Table, pseudonymise: Pseudonymise) -> pa.Table:
    """`data` reduced to exactly `raw.schema`, shopper ids replaced by pseudonyms.

    Columns outside the schema are dropped; a missing non-key column is null; a missing
    or null primary-key column, or a column that does not cast, raises ValueError.
    """
    source_of = {pseudo: source for source, pseudo in raw.pseudonymised}
    arrays = []
    for field in raw.schema:
        source = source_of.get(field.name, field.name)
        values = _values(data, source)
        if values is None:
            if field.name in raw.primary_key:
                raise MinimisationError(f"{raw.dataset}.{raw.name}: required column {source} is missing")
            arrays.append(pa.nulls(data.num_rows, field.type))
            continue
        if field.name in source_of:
            values = _pseudonyms(raw, source, values, pseudonymise)
        arrays.append(_cast(raw, source, values, field.type))
        if field.name in raw.primary_key and arrays[-1].null_count:
            raise MinimisationError(f"{raw.dataset}.{raw.name}: key column {source} has "
                             f"{arrays[-1].null_count} empty values")
    return pa.Table.from_arrays(arrays, schema=raw.schema)


def hmac_pseudonymiser(key: bytes, namespace: str) -> Pseudonymise:
    """Lowercase hex HMAC-SHA256 of `namespace:value`, null for null.

    Pure: the caller owns the key. Hashes each distinct value once, then maps back.
    """
    if not key:
        raise MinimisationError("pseudonym key must not be empty")

    def digest(value: str) -> str:
        return hmac.new(key, f"{namespace}:{value}".encode(), hashlib.sha256).hexdigest()

    def pseudonymise(values: pa.Array) -> pa.Array:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        values = values.cast(pa.string())
        distinct = pc.unique(values).drop_null()
        hashed = pa.array([digest(v) for v in distinct.to_pylist()], pa.string())
        return pc.take(hashed, pc.index_in(values, value_set=distinct))

    return pseudonymise
