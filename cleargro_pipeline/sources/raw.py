"""One dlt source per system, built from the raw-table contract.

Plain dlt, no Dagster: each resource takes Arrow chunks from a provider (the
demo generator, a file drop, a live API client), keeps only the contract's
allowlisted columns with shopper ids pseudonymised (erased shoppers left
out), and merges on the
source's primary keys so a re-run loads no duplicates. Synced sources use an
incremental cursor so only changed rows are normalised and loaded; a file
drop is taken whole (a merchant may resend corrected history).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping

import dlt
import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention

from cleargro_pipeline.sources import contract
from cleargro_pipeline.sources.contract import RawTable
from cleargro_pipeline.sources.minimise import minimise, suppress_erased

Pseudonymise = Callable[[pa.Array], pa.Array]
ChunkProvider = Callable[[RawTable], Iterable[pa.Table]]

_naming = NamingConvention()


def column_name(api_name: str) -> str:
    """The warehouse column for an API field (dlt's snake_case: `metrics.cost_micros` -> `metrics_cost_micros`)."""
    return _naming.normalize_identifier(api_name)


def _normalised(table: pa.Table) -> pa.Table:
    return table.rename_columns([column_name(c) for c in table.column_names])


def _resource(raw: RawTable, chunks: Iterable[pa.Table], pseudonymise: Pseudonymise,
              erased: frozenset[str], incremental: bool, first_load: bool,
              lag: float | None = None):
    def rows() -> Iterator[pa.Table]:
        for chunk in chunks:
            if chunk.num_rows:
                kept = suppress_erased(raw, minimise(raw, chunk, pseudonymise), erased)
                if kept.num_rows:
                    yield _normalised(kept)

    hints = {}
    if incremental:
        hints["incremental"] = dlt.sources.incremental(column_name(raw.cursor), lag=lag)
    # A table's first load has nothing to merge with: appending skips the staging copy.
    # Sources deliver unique keys (file drops are validated, the demo and APIs key by id).
    return dlt.resource(
        rows, name=raw.name, write_disposition="append" if first_load else "merge",
        primary_key=[column_name(c) for c in raw.primary_key], **hints,
    )()


def contract_source(system: str, provide: ChunkProvider, pseudonymise: Pseudonymise, *,
                    incremental: bool, tables: Iterable[str] | None = None,
                    loaded: Iterable[str] = (), scope: Any = None,
                    erased: frozenset[str] = frozenset(), lag: float | None = None):
    """The dlt source of one system (`shop`, `ga4` or `google_ads`); `loaded` names the
    tables that already exist in the warehouse (merged into; the others are appended).
    `scope` (a scopes.Scope) leaves out the tables and columns the tenant does not allow;
    `erased` names the pseudonyms of shoppers who asked to be erased (never loaded again).
    `lag` (days for a date cursor, seconds for a timestamp) lets rows up to that far behind
    the cursor through again: a source that re-reads a trailing window because the provider
    keeps revising it (GA4, Google Ads) has its revised rows merged, not dropped."""
    loaded = set(loaded)
    wanted = set(tables) if tables is not None else None
    raws = [t for t in contract.tables_of(system) if wanted is None or t.name in wanted]
    # --- data scopes: a table out of scope gets no resource (its provider is never asked);
    # an allowed one carries its scoped schema, so minimise drops the excluded columns ---
    if scope is not None:
        raws = [r for r in map(scope.restrict, raws) if r is not None]
    # --- end data scopes ---

    @dlt.source(name=system, max_table_nesting=0, root_key=False)
    def source():
        return [_resource(t, provide(t), pseudonymise, erased, incremental, t.name not in loaded,
                          lag) for t in raws]

    return source()


def incremental_last_value(raw: RawTable) -> Any:
    """The last value of a synced table's incremental cursor, as dlt's state in the tenant's
    warehouse holds it (None before the table's first load). Only while a source extracts:
    a live provider bounds its queries with it."""
    state = dlt.current.resource_state(raw.name)
    return state.get("incremental", {}).get(column_name(raw.cursor), {}).get("last_value")


def provider_from_mapping(chunks: Mapping[tuple[str, str], pa.Table]) -> ChunkProvider:
    """Adapt a fixed set of tables (a file drop) to a chunk provider."""
    def provide(raw: RawTable) -> Iterable[pa.Table]:
        table = chunks.get((raw.dataset, raw.name))
        return [table] if table is not None else []
    return provide
