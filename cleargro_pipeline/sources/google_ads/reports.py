"""The four contract reports as GAQL, and a streamed batch of `GoogleAdsRow`s as an Arrow table.

The contract's column names are GAQL field names, so a report selects exactly its (possibly
scope-restricted) schema's columns and nothing else. Values keep the API's units (money in
micros, impression shares as 0-1 fractions); enums become their names (`ENABLED`, `EXACT`),
`segments.date` (the account's day, `YYYY-MM-DD`) a date; a field the API leaves unset (an
impression share Google does not report) is null.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Sequence

import pyarrow as pa
from google.ads.googleads.v26.services.types.google_ads_service import GoogleAdsRow
from google.protobuf.descriptor import FieldDescriptor

from cleargro_pipeline.sources.contract import RawTable

# contract table -> the GAQL resource its rows come FROM
RESOURCES = {
    "campaign_daily": "campaign",
    "shopping_product_daily": "shopping_performance_view",
    "keyword_daily": "keyword_view",
    "search_term_daily": "search_term_view",
}
DATE_FIELD = "segments.date"
ROW = GoogleAdsRow.pb().DESCRIPTOR

# protobuf field types each contract type may be read from
_READS = {
    pa.int64(): {FieldDescriptor.TYPE_INT64},
    pa.float64(): {FieldDescriptor.TYPE_DOUBLE},
    pa.string(): {FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_ENUM},
    pa.date32(): {FieldDescriptor.TYPE_STRING},
}


class ContractMismatch(ValueError):
    """A contract column that is no GAQL field of the pinned version, or of another type."""


def gaql(raw: RawTable, start: date, end: date) -> str:
    """The report's query for the days start..end (both included, the account's days)."""
    return (f"SELECT {', '.join(raw.schema.names)} FROM {RESOURCES[raw.name]} "
            f"WHERE {DATE_FIELD} BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    holder: str  # path of the message holding the field ("" for the row itself)
    leaf: str
    tracks_presence: bool
    enum_names: dict[int, str] | None

    def array(self, holders: Sequence[Any]) -> pa.Array:
        """The column from the messages holding it (one per row)."""
        values = list(map(operator.attrgetter(self.leaf), holders))
        if self.tracks_presence:
            values = [v if m.HasField(self.leaf) else None for v, m in zip(values, holders)]
        if self.enum_names is not None:
            names = self.enum_names
            values = [names.get(v, "UNKNOWN") for v in values]
        if self.type == pa.date32():
            return pa.array(values, pa.string()).cast(pa.date32())
        return pa.array(values, self.type)


@lru_cache(maxsize=None)
def columns(schema: pa.Schema) -> tuple[Column, ...]:
    """How each column of `schema` is read from a GoogleAdsRow (checked against the pinned
    version's descriptor, so a renamed field fails here, before any query)."""
    return tuple(_column(field.name, field.type) for field in schema)


def _column(name: str, type_: pa.DataType) -> Column:
    *path, leaf = name.split(".")
    message = ROW
    for part in path:
        field = message.fields_by_name.get(part)
        if field is None or field.message_type is None:
            raise ContractMismatch(f"'{name}' is no GAQL field of the pinned API version")
        message = field.message_type
    field = message.fields_by_name.get(leaf)
    if field is None or field.type not in _READS.get(type_, ()):
        raise ContractMismatch(f"'{name}' is no {type_} field of the pinned API version")
    enum = ({v.number: v.name for v in field.enum_type.values}
            if field.type == FieldDescriptor.TYPE_ENUM else None)
    return Column(name, type_, ".".join(path), leaf, field.has_presence, enum)


def batch_table(schema: pa.Schema, rows: Sequence[Any]) -> pa.Table:
    """One response batch (plain protobuf GoogleAdsRows) as a table of `schema`. Each message
    on a path (`metrics`) is fetched once a row and shared by its columns: reaching a nested
    message costs protobuf more than reading a field of it."""
    rows = list(rows)
    holders: dict[str, list[Any]] = {"": rows}
    arrays = []
    for column in columns(schema):
        if column.holder not in holders:
            holders[column.holder] = list(map(operator.attrgetter(column.holder), rows))
        arrays.append(column.array(holders[column.holder]))
    return pa.Table.from_arrays(arrays, schema=schema)
