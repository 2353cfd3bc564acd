"""The two GA4 reports of the raw contract, and how a runReport page becomes a contract table.

GA answers every value as a string, row by row. A page is turned into Arrow once (one C++
conversion of the rows' nested lists), then each column is picked and cast by the contract's
type: no per-row Python work after parsing the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.sources import contract
from cleargro_pipeline.sources.contract import RawTable

_VALUES = pa.list_(pa.struct([("value", pa.string())]))
_ROW = pa.struct([("dimensionValues", _VALUES), ("metricValues", _VALUES)])


class ReportShapeError(CleargroError):
    """A runReport page without the columns that were asked for."""


@dataclass(frozen=True)
class Report:
    name: str
    table: str  # the raw_ga4 contract table it fills
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...]

    @property
    def raw(self) -> RawTable:
        return contract.table(contract.GA4, self.table)


ITEMS = Report("items", "items_daily", ("date", "itemId", "itemName"),
               ("itemsViewed", "itemsAddedToCart", "itemsPurchased", "itemRevenue"))
TRAFFIC = Report("traffic", "traffic_daily", ("date", "sessionSourceMedium"),
                 ("sessions", "engagedSessions", "ecommercePurchases", "purchaseRevenue"))
REPORTS = (ITEMS, TRAFFIC)
BY_TABLE = {r.table: r for r in REPORTS}


def page_table(report: Report, page: dict[str, Any]) -> tuple[pa.Table, int]:
    """The page's rows as the contract table, and how many rows had no day (GA's "(other)"
    row of a data-loss answer cannot be keyed by day: it is counted, not stored)."""
    schema = report.raw.schema
    rows = page.get("rows") or []
    if not rows:
        return schema.empty_table(), 0
    parsed = pa.array(rows, type=_ROW)
    strings = {**_columns(parsed.field("dimensionValues"), page.get("dimensionHeaders")),
               **_columns(parsed.field("metricValues"), page.get("metricHeaders"))}
    flags = dict(zip(FLAG_COLUMNS, quality(page).values()))
    table = pa.table([pa.array([flags[f.name]] * len(rows), pa.bool_()) if f.name in flags
                      else _cast(strings.get(f.name), f) for f in schema], schema=schema)
    dated = table.filter(pc.is_valid(table["date"]))
    return _merged_duplicates(report, dated), table.num_rows - dated.num_rows


# The contract's flag columns, in the order `quality` returns the flags.
FLAG_COLUMNS = ("dataLossFromOtherRow", "subjectToThresholding", "sampled")


def quality(page: dict[str, Any]) -> dict[str, bool]:
    """GA's data-quality flags of one answer (absent, null and false all mean "no")."""
    metadata = page.get("metadata") or {}
    return {"data_loss_from_other_row": metadata.get("dataLossFromOtherRow") is True,
            "subject_to_thresholding": metadata.get("subjectToThresholding") is True,
            "sampled": bool(metadata.get("samplingMetadatas"))}


def _columns(values: pa.Array, headers: Any) -> dict[str, pa.Array]:
    """Header name -> that column's strings (headers come in the rows' order)."""
    names = [str((h or {}).get("name")) for h in headers or []]
    return {name: pc.list_element(values, i).field("value") for i, name in enumerate(names)}


def _cast(strings: pa.Array | None, field: pa.Field) -> pa.Array:
    if strings is None:
        raise ReportShapeError(f"a GA4 answer has no column {field.name}")
    if pa.types.is_date(field.type):  # `date` is YYYYMMDD in the property's time zone
        parsed = pc.strptime(strings, format="%Y%m%d", unit="s", error_is_null=True)
        return pc.cast(parsed, pa.date32())
    if pa.types.is_integer(field.type):
        try:
            return pc.cast(strings, field.type)
        except pa.ArrowInvalid:  # "12.0": through a float, refusing a real fraction
            pass
        try:
            return pc.cast(pc.cast(strings, pa.float64()), field.type)
        except pa.ArrowInvalid:
            raise ReportShapeError(f"a GA4 answer's {field.name} is not whole numbers") from None
    return pc.cast(strings, field.type)


def _merged_duplicates(report: Report, table: pa.Table) -> pa.Table:
    """Rows sharing the contract key summed into one (an item renamed during a day comes back
    once per name; the first name is kept)."""
    keys = list(report.raw.primary_key)
    if table.num_rows < 2 or table.group_by(keys).aggregate([]).num_rows == table.num_rows:
        return table
    others = [c for c in table.column_names if c not in keys]
    how = {c: "sum" if c in report.metrics else "first" for c in others}
    merged = table.group_by(keys, use_threads=False).aggregate([(c, how[c]) for c in others])
    # pyarrow names an aggregate `<column>_<function>`; its column order varies by version.
    named = {**{k: merged[k] for k in keys}, **{c: merged[f"{c}_{how[c]}"] for c in others}}
    return pa.table([named[c] for c in table.column_names], schema=table.schema)
