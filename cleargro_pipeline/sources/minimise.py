"""Data minimisation: the last step before anything touches disk.

`minimise` keeps exactly the contract's columns (an allowlist: whatever else
an API or a file carries, such as emails, addresses, IPs or payment details,
is dropped) and replaces shopper identifiers with keyed pseudonyms;
`suppress_erased` then leaves out the shoppers whose erasure was asked for.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.security.pseudonyms import Pseudonymise
from cleargro_pipeline.sources.contract import RawTable


class MinimisationError(CleargroError, ValueError):
    """Data that cannot be reduced to the contract; names the table and column, never a value."""


def _values(data: pa.Table, name: str) -> pa.ChunkedArray | None:
    # Chunks are kept as they are: combining them would copy every column once more.
    return data.column(name) if name in data.column_names else None


def _cast(raw: RawTable, name: str, values: pa.Array, typ: pa.DataType) -> pa.Array:
    try:
        return values.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        # Arrow's own message quotes the value; ours must be safe to print.
        raise MinimisationError(f"{raw.dataset}.{raw.name}: column {name} ({values.type}) "
                         f"cannot be cast to {typ}") from None


def _pseudonyms(raw: RawTable, source: str, values: pa.ChunkedArray,
                pseudonymise: Pseudonymise) -> pa.Array:
    ids = values if _is_identifier(values.type) else _cast(raw, source, values, pa.string())
    out = pseudonymise(ids)
    if len(out) != len(ids) or not pa.types.is_string(out.type):
        raise MinimisationError(f"{raw.dataset}.{raw.name}: pseudonymiser returned {len(out)} values of "
                         f"{out.type} for {len(ids)} identifiers")
    # A missing shopper id stays missing: never a pseudonym of "null".
    return pc.if_else(pc.is_null(ids), pa.scalar(None, pa.string()), out)


def _is_identifier(typ: pa.DataType) -> bool:
    return pa.types.is_integer(typ) or pa.types.is_string(typ) or pa.types.is_large_string(typ)


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


def suppress_erased(raw: RawTable, table: pa.Table, erased: frozenset[str]) -> pa.Table:
    """A minimised chunk without the erased shoppers, as an erasure left the warehouse: a row
    keyed by an erased pseudonym is dropped (their customer record); any other erased
    pseudonym becomes null (their orders, unlinked). So a re-sync or a re-imported file cannot
    bring an erased shopper back."""
    if not erased or not raw.pseudonymised:
        return table
    value_set = pa.array(sorted(erased), pa.string())
    for _, column in raw.pseudonymised:
        if column not in table.column_names:  # left out by the tenant's data scope
            continue
        hit = pc.fill_null(pc.is_in(table[column], value_set=value_set), False)
        if column in raw.primary_key:
            table = table.filter(pc.invert(hit))
        else:
            field = table.schema.field(column)
            table = table.set_column(table.column_names.index(column), field,
                                     pc.if_else(hit, pa.scalar(None, field.type), table[column]))
    return table
