"""`cleargro import --from DIR`: read and validate a directory of exported files.

No dlt and no Dagster here: `read_drop` parses every known file into
contract-shaped Arrow tables (before minimisation) and validates all of them
before returning anything, so a malformed file loads nothing. Errors name the
file, the line and the offending field's value, never a whole row.
"""

from __future__ import annotations

import bisect
import csv
import json
import json.decoder
import json.scanner
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import polars as pl
import pyarrow as pa

from cleargro_pipeline.errors import CleargroError
import pyarrow.csv as pacsv

from cleargro_pipeline.sources import contract, shopify_json as sj
from cleargro_pipeline.sources.contract import APP, APP_EVENTS, GA4, GOOGLE_ADS, SHOP, RawTable

JSON_FILES: dict[str, Callable[[Any], dict[str, pa.Table]]] = {
    "products.json": sj.parse_products,
    "orders.json": sj.parse_orders,
    "inventory_levels.json": sj.parse_inventory_levels,
    "inventory_items.json": sj.parse_inventory_items,
    "locations.json": sj.parse_locations,
    "customer.json": sj.parse_customers,
    "customers.json": sj.parse_customers,
}
CSV_FILES: dict[str, tuple[str, str]] = {
    "ga4_items.csv": (GA4, "items_daily"),
    "ga4_traffic.csv": (GA4, "traffic_daily"),
    "google_ads_campaigns.csv": (GOOGLE_ADS, "campaign_daily"),
    "google_ads_products.csv": (GOOGLE_ADS, "shopping_product_daily"),
    "google_ads_keywords.csv": (GOOGLE_ADS, "keyword_daily"),
    "google_ads_search_terms.csv": (GOOGLE_ADS, "search_term_daily"),
}
# Columns an export may leave out: GA's data-quality flags come with API answers only (a CSV
# export of a report has none); they load as null, "unknown".
OPTIONAL_COLUMNS = frozenset(name for name, _ in contract.GA4_QUALITY)

JSONL_FILES: dict[str, tuple[str, str]] = {
    "app_events.jsonl": (APP, "app_events"),  # in-app behaviour events (the feedback loop)
}
KNOWN_FILES = (*JSON_FILES, *CSV_FILES, *JSONL_FILES)


class DropFileError(CleargroError, ValueError):
    """A file (or the directory) that cannot be imported; the message is safe to print."""

    def __init__(self, file: str, line: int | None, reason: str):
        self.file, self.line, self.reason = file, line, reason
        super().__init__(f"{file} line {line}: {reason}" if line else f"{file}: {reason}")


@dataclass(frozen=True)
class DropContents(Mapping):
    """`(dataset, table) -> pa.Table` (pre-minimisation), plus the files used and ignored."""

    tables: dict[tuple[str, str], pa.Table]
    files: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)

    def __getitem__(self, key: tuple[str, str]) -> pa.Table:
        return self.tables[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)


# --- JSON -----------------------------------------------------------------

class _LineDecoder(json.JSONDecoder):
    """Tags every decoded object with its line (under `sj.LINE_KEY`) for error messages.

    Uses the pure-Python scanner, the only one with a hook per object (~10x slower than
    the C one, about 2 s for 30 MB: fine for a manual import).
    """

    def __init__(self, text: str):
        super().__init__()
        newlines = [m.start() for m in re.finditer("\n", text)]

        def parse_object(s_and_end, *args, **kwargs):
            obj, end = json.decoder.JSONObject(s_and_end, *args, **kwargs)
            obj[sj.LINE_KEY] = bisect.bisect_left(newlines, s_and_end[1]) + 1
            return obj, end

        self.parse_object = parse_object
        self.scan_once = json.scanner.py_make_scanner(self)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # tolerate the BOM some editors write
    except UnicodeDecodeError as e:
        raise DropFileError(path.name, data.count(b"\n", 0, e.start) + 1, "not valid UTF-8 text") from None


def _read_json(path: Path) -> dict[tuple[str, str], pa.Table]:
    text = _read_text(path)
    try:
        body = _LineDecoder(text).decode(text)
    except json.JSONDecodeError as e:
        raise DropFileError(path.name, e.lineno, f"invalid JSON: {e.msg} (column {e.colno})") from None
    try:
        tables = JSON_FILES[path.name](body)
    except sj.ShapeError as e:
        raise DropFileError(path.name, 1, str(e)) from None
    except sj.FieldError as e:
        raise DropFileError(path.name, e.line or 1, e.detail) from None
    out = {}
    for name, table in tables.items():
        lines = table.column(sj.SOURCE_LINE).to_pylist() if sj.SOURCE_LINE in table.column_names else []
        # Name the table when it is nested in the file (order_line_items in orders.json).
        label = "" if name in (path.stem, path.stem + "s") else f"{name} "
        raw = contract.table(SHOP, name)
        if label:
            # A nested record listed under several parents (Shopify's own products fixture
            # repeats one variant under four products) is one record: the last listing wins,
            # as a merge load would keep it.
            table, lines = _keep_last(raw, table, lines)
        _check_keys(path.name, raw, table,
                    lambda row: lines[row] if row < len(lines) else None, label)
        out[(SHOP, name)] = table.drop_columns([sj.SOURCE_LINE]) if lines else table
    return out


def _keep_last(raw: RawTable, table: pa.Table, lines: list) -> tuple[pa.Table, list]:
    keys = [k for k in raw.primary_key if k in table.column_names]
    last = pl.from_arrow(table.select(keys)).with_row_index().group_by(keys).agg(
        pl.col("index").max())["index"].sort()
    rows = pa.array(last.to_list(), pa.int64())
    return table.take(rows), [lines[i] for i in last.to_list()] if lines else lines


# --- CSV ------------------------------------------------------------------

def _csv_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of every non-blank record; only on error paths (Python speed)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader, start = csv.reader(handle), 1
        for record in reader:
            if record:
                yield start, record
            start = reader.line_num + 1


def _csv_line_of(path: Path, row: int) -> int | None:
    """Line of data row `row` (0-based), counting the header as line 1."""
    for i, (line, _) in enumerate(_csv_lines(path)):
        if i == row + 1:
            return line
    return None


def _csv_header(path: Path, raw: RawTable) -> list[str]:
    try:
        first = next(_csv_lines(path), None)
    except csv.Error as e:
        raise DropFileError(path.name, 1, f"not a well-formed CSV header ({e})") from None
    if first is None:
        raise DropFileError(path.name, 1, "file is empty: expected a header line")
    header = [h.strip() for h in first[1]]
    missing = [c for c in raw.schema.names if c not in header and c not in OPTIONAL_COLUMNS]
    if missing:
        raise DropFileError(path.name, 1, f"missing header column {', '.join(missing)}")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DropFileError(path.name, 1, f"header column {', '.join(repeated)} appears twice")
    return header


def _csv_shape_error(path: Path, width: int) -> DropFileError:
    try:
        for line, record in _csv_lines(path):
            if len(record) != width:
                return DropFileError(path.name, line, f"expected {width} fields, found {len(record)}")
    except csv.Error:
        pass
    # Arrow's own message would quote the row: keep it out.
    return DropFileError(path.name, None, "not a well-formed CSV file")


def _read_csv(path: Path) -> dict[tuple[str, str], pa.Table]:
    raw = contract.table(*CSV_FILES[path.name])
    _read_text(path)  # UTF-8 check with a line number, before Arrow's row-quoting one
    header = _csv_header(path, raw)
    try:
        # Everything as text first: our own casts give line-accurate, value-only errors.
        strings = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
                                 convert_options=pacsv.ConvertOptions(
                                     column_types={c: pa.string() for c in header},
                                     include_columns=[c for c in raw.schema.names if c in header],
                                     strings_can_be_null=True, null_values=[""]))
    except pa.ArrowInvalid:
        raise _csv_shape_error(path, len(header)) from None
    arrays = []
    for f in raw.schema:
        if f.name not in strings.column_names:  # an optional column the export lacks: unknown
            arrays.append(pa.nulls(strings.num_rows, f.type))
            continue
        try:
            arrays.append(sj.parse_strings(strings.column(f.name).combine_chunks(), f.type, f.name))
        except sj.FieldError as e:
            raise DropFileError(path.name, _csv_line_of(path, e.row), e.detail) from None
    table = pa.Table.from_arrays(arrays, schema=raw.schema)
    _check_keys(path.name, raw, table, lambda row: _csv_line_of(path, row))
    return {(raw.dataset, raw.name): table}


# --- JSON Lines -------------------------------------------------------------

def _read_jsonl(path: Path) -> dict[tuple[str, str], pa.Table]:
    """One JSON object per line, fields named as the contract's delivered columns."""
    raw = contract.table(*JSONL_FILES[path.name])
    source_of = dict((p, s) for s, p in raw.pseudonymised)
    columns = [source_of.get(f.name, f.name) for f in raw.schema]
    values: dict[str, list] = {c: [] for c in columns}
    lines: list[int] = []
    for number, text in enumerate(_read_text(path).splitlines(), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise DropFileError(path.name, number, f"invalid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(record, dict):
            raise DropFileError(path.name, number, "expected one JSON object per line")
        for column in columns:
            try:
                values[column].append(sj.as_text(record.get(column), column, pa.string(), len(lines)))
            except sj.FieldError as e:
                raise DropFileError(path.name, number, e.detail) from None
        lines.append(number)
    arrays = []
    for f, column in zip(raw.schema, columns):
        typ = pa.string() if column in source_of.values() else f.type
        try:
            arrays.append(sj.parse_strings(pa.array(values[column], pa.string()), typ, column))
        except sj.FieldError as e:
            raise DropFileError(path.name, lines[e.row], e.detail) from None
    table = pa.Table.from_arrays(arrays, names=columns)
    if "event" in columns:
        unknown = [i for i, event in enumerate(values["event"]) if event not in APP_EVENTS]
        if unknown:
            raise DropFileError(path.name, lines[unknown[0]],
                                f"event {values['event'][unknown[0]]!r} is not one of {', '.join(APP_EVENTS)}")
    _check_keys(path.name, raw, table, lambda row: lines[row] if row < len(lines) else None)
    return {(raw.dataset, raw.name): table}


# --- validation -----------------------------------------------------------

def _check_keys(file: str, raw: RawTable, table: pa.Table, line_of: Callable[[int], int | None],
                prefix: str = "") -> None:
    """Primary keys present and unique within the file (pre-minimisation: raw shopper ids)."""
    source_of = dict((p, s) for s, p in raw.pseudonymised)
    keys = [source_of.get(k, k) for k in raw.primary_key]
    for key in keys:
        nulls = table.column(key).is_null().combine_chunks()
        if nulls.true_count:
            row = nulls.to_pylist().index(True)
            raise DropFileError(file, line_of(row), f"{prefix}{key} is empty")
    frame = pl.from_arrow(table.select(keys))
    duplicate = frame.select(pl.struct(keys).is_first_distinct().not_().arg_true()).to_series()
    if len(duplicate):
        row = duplicate[0]
        first = frame.with_row_index().join(frame[row], on=keys)["index"].min()
        # Shopper ids are not quoted, even to their own merchant's terminal.
        shown = ", ".join(f"{k}={frame[row, k]}" for k in keys if k not in source_of.values())
        where = f" (first on line {line_of(first)})" if line_of(first) else ""
        raise DropFileError(file, line_of(row), f"duplicate {prefix}key {shown or '/'.join(keys)}{where}")


# --- directory ------------------------------------------------------------

def read_drop(directory: Path) -> DropContents:
    """Parse and validate every known file of `directory`; raise DropFileError on the first problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DropFileError(str(directory), None, "not a directory")
    entries = sorted(directory.iterdir())
    used = [p for p in entries if p.is_file() and p.name in KNOWN_FILES]
    ignored = [p for p in entries if p not in used]
    if not used:
        known = ", ".join(KNOWN_FILES)
        raise DropFileError(str(directory), None, f"no importable files (expected any of: {known})")
    if {"customer.json", "customers.json"} <= {p.name for p in used}:
        raise DropFileError("customers.json", None, "customer.json is also present: send one of the two")
    tables: dict[tuple[str, str], pa.Table] = {}
    for path in used:
        read = {".json": _read_json, ".jsonl": _read_jsonl}.get(path.suffix, _read_csv)
        tables.update(read(path))
    return DropContents(tables, used, ignored)
