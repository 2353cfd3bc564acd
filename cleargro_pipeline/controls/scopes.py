"""Per-tenant data scopes: what Cleargro may read from a merchant's sources, enforced at extraction.
A tenant's `scopes` setting names the sources and tables we may read and whether anything per
shopper is kept (`shopper_level`); `ingest` and `sources.raw.contract_source` apply the `Scope`
before dlt extracts anything, so nothing out of scope is requested, staged or stored, and
`purge` brings data already held in line with a narrowed scope. The setting's format and the
rules: `controls/README.md`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.controls import retention
from cleargro_pipeline.security import audit
from cleargro_pipeline.sources import contract
from cleargro_pipeline.sources.contract import RawTable
from cleargro_pipeline.tenants import InvalidSetting, Tenant

KEYS = ("sources", "tables", "shopper_level")
# Datasets whose pseudonyms stand for shoppers (the app's pseudonyms are merchants' staff).
SHOPPER_DATASETS = (contract.SHOP,)


def _shopper_columns(raw: RawTable) -> tuple[str, ...]:
    if raw.dataset not in SHOPPER_DATASETS:
        return ()
    return tuple(pseudo for _, pseudo in raw.pseudonymised)


def shopper_tables() -> list[RawTable]:
    """Tables keyed by a shopper: not read at all without shopper-level scope."""
    return [t for t in contract.TABLES
            if any(c in t.primary_key for c in _shopper_columns(t))]


def shopper_columns() -> list[tuple[RawTable, str]]:
    """Shopper pseudonym columns of the other tables: dropped without shopper-level scope."""
    keyed = {(t.dataset, t.name) for t in shopper_tables()}
    return [(t, c) for t in contract.TABLES if (t.dataset, t.name) not in keyed
            for c in _shopper_columns(t)]


@dataclass(frozen=True)
class Scope:
    """What may be read: `sources` None = all; `tables` per source (absent = all of it)."""
    sources: frozenset[str] | None = None
    tables: Mapping[str, frozenset[str]] = field(default_factory=dict)
    shopper_level: bool = True

    def allows_source(self, source: str) -> bool:
        return self.sources is None or source in self.sources

    def allows_table(self, raw: RawTable) -> bool:
        if not self.allows_source(raw.source):
            return False
        if raw.source in self.tables and raw.name not in self.tables[raw.source]:
            return False
        if not self.shopper_level and any(c in raw.primary_key for c in _shopper_columns(raw)):
            return False
        return True

    def dropped_columns(self, raw: RawTable) -> tuple[str, ...]:
        """Contract columns of an allowed table that this scope keeps out of the warehouse."""
        return () if self.shopper_level else _shopper_columns(raw)

    def restrict(self, raw: RawTable) -> RawTable | None:
        """`raw` as this scope may store it (None: not at all). The returned table's schema
        lacks the dropped columns and pseudonymises nothing for them, so minimisation drops
        the source field like any field outside the contract."""
        if not self.allows_table(raw):
            return None
        dropped = set(self.dropped_columns(raw))
        if not dropped:
            return raw
        schema = raw.schema
        for name in dropped:
            schema = schema.remove(schema.get_field_index(name))
        return dataclasses.replace(
            raw, schema=schema,
            pseudonymised=tuple(p for p in raw.pseudonymised if p[1] not in dropped))

    @property
    def everything(self) -> bool:
        return self.sources is None and not self.tables and self.shopper_level


EVERYTHING = Scope()


# --- settings ------------------------------------------------------------------------------

def _source_names() -> tuple[str, ...]:
    return tuple(contract.SOURCES)


def _list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
            isinstance(v, str) for v in value):
        raise InvalidSetting(f"scope {what} must be a list of names")
    return sorted({v.strip() for v in value})


def normalise(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a scopes setting and return its canonical form (sorted, defaults left out)."""
    if not isinstance(settings, Mapping):
        raise InvalidSetting("scopes must be a mapping")
    unknown = sorted(set(settings) - set(KEYS))
    if unknown:
        raise InvalidSetting(f"unknown scope setting {', '.join(unknown)}; settings: {', '.join(KEYS)}")
    out: dict[str, Any] = {}
    sources = settings.get("sources")
    if sources is not None:
        sources = _list(sources, "sources")
        bad = [s for s in sources if s not in _source_names()]
        if bad:
            raise InvalidSetting(f"unknown source {', '.join(bad)}; sources are "
                                 f"{', '.join(_source_names())}")
        if not sources:
            raise InvalidSetting("scope sources must name at least one source "
                                 "(to stop reading a source, `cleargro disconnect` it)")
        out["sources"] = sources
    tables = settings.get("tables") or {}
    if not isinstance(tables, Mapping):
        raise InvalidSetting("scope tables must map a source to a list of its tables")
    shopper_level = settings.get("shopper_level", True)
    if not isinstance(shopper_level, bool):
        raise InvalidSetting(f"scope shopper_level must be true or false, not {shopper_level!r}")
    checked: dict[str, list[str]] = {}
    for source, names in sorted(tables.items()):
        if source not in _source_names():
            raise InvalidSetting(f"unknown source {source!r} in scope tables; sources are "
                                 f"{', '.join(_source_names())}")
        if sources is not None and source not in sources:
            raise InvalidSetting(f"scope tables name {source}, which scope sources leave out")
        names = _list(names, f"tables of {source}")
        known = [t.name for t in contract.tables_of(source)]
        bad = [n for n in names if n not in known]
        if bad:
            raise InvalidSetting(f"unknown table {', '.join(bad)} of {source}; its tables are "
                                 f"{', '.join(known)}")
        if not names:
            raise InvalidSetting(f"scope tables of {source} must name at least one table "
                                 f"(leave {source} out of scope sources instead)")
        if not shopper_level:
            shopper = [n for n in names if n in {t.name for t in shopper_tables()
                                                 if t.source == source}]
            if shopper:
                raise InvalidSetting(f"{source}.{', '.join(shopper)} holds shopper-level data, "
                                     "which shopper_level false excludes")
        checked[source] = names
    if checked:
        out["tables"] = checked
    if not shopper_level:
        out["shopper_level"] = False
    return out


def from_settings(settings: Mapping[str, Any]) -> Scope:
    clean = normalise(settings)
    return Scope(
        sources=frozenset(clean["sources"]) if "sources" in clean else None,
        tables={s: frozenset(names) for s, names in clean.get("tables", {}).items()},
        shopper_level=clean.get("shopper_level", True))


def of(tenant: Tenant) -> Scope:
    """The tenant's scope (from its registry entry)."""
    return from_settings(tenant.scopes or {})


def parse_options(items: Iterable[str], current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Apply `tenants configure --scope` items to `current` settings, in order:

    `all` (everything again), `sources=shop,ga4` (or `sources=all`), `shop=orders,order_line_items`
    (a source's tables, or `shop=all`), `shopper_level=false|true`.
    """
    settings: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v)
                                for k, v in (current or {}).items()}
    for item in items:
        text = item.strip()
        if text == "all":
            settings = {}
            continue
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise InvalidSetting(f"scope {item!r}: use all, sources=A,B, <source>=T1,T2 or "
                                 "shopper_level=true|false")
        if key == "shopper_level":
            if value.lower() not in ("true", "false"):
                raise InvalidSetting(f"scope shopper_level must be true or false, not {value!r}")
            settings["shopper_level"] = value.lower() == "true"
        elif key == "sources":
            if value == "all":
                settings.pop("sources", None)
            else:
                settings["sources"] = _list(value, "sources")
        elif key in _source_names():
            tables = dict(settings.get("tables") or {})
            if value == "all":
                tables.pop(key, None)
            else:
                tables[key] = _list(value, f"tables of {key}")
            settings["tables"] = tables
        else:
            raise InvalidSetting(f"unknown scope {key!r}: use sources, shopper_level or a source "
                                 f"({', '.join(_source_names())})")
    return normalise(settings)


def configure(name: str, settings: Mapping[str, Any]) -> Tenant:
    """Validate and store the tenant's scopes. Applies to the next load; data already stored
    outside the new scope stays until `purge(name)` (the CLI runs it)."""
    return tenants.set_scopes(name, normalise(settings))


# --- showing it ----------------------------------------------------------------------------

def describe(config: Tenant) -> list[str]:
    """What is read and kept for the tenant, one line each (for `cleargro tenants show`)."""
    scope = of(config)
    lines = []
    kept = [s for s in _source_names() if scope.allows_source(s)]
    left = [s for s in _source_names() if s not in kept]
    lines.append("sources read: " + (", ".join(kept) if scope.sources is not None else
                                     f"all ({', '.join(kept)})")
                 + (f"; not read: {', '.join(left)}" if left else ""))
    for source in kept:
        tables = contract.tables_of(source)
        allowed = [t.name for t in tables if scope.allows_table(t)]
        if len(allowed) < len(tables):
            lines.append(f"{source} tables read: {', '.join(allowed) or 'none'}; not read: "
                         f"{', '.join(t.name for t in tables if t.name not in allowed)}")
    if scope.shopper_level:
        lines.append("shopper-level data: kept as keyed pseudonyms ("
                     + ", ".join([f"{t.dataset}.{t.name}" for t in shopper_tables()]
                                 + [f"{t.dataset}.{t.name}.{c}" for t, c in shopper_columns()])
                     + ")")
    else:
        lines.append("shopper-level data: none kept (not read: "
                     + ", ".join(f"{t.dataset}.{t.name}" for t in shopper_tables())
                     + "; dropped at extraction: "
                     + ", ".join(f"{t.dataset}.{t.name}.{c}" for t, c in shopper_columns()) + ")")
    months = config.retention_months
    lines.append(f"retention: {months} months of raw history" if months else
                 "retention: all history kept")
    for source, record in sorted(config.disconnected_sources.items()):
        lines.append(f"disconnected: {source} since {record.get('disconnected_at')}"
                     + (" (data deleted)" if record.get("data_deleted") else ""))
    return lines


# --- data already stored ---------------------------------------------------------------------

@dataclass
class PurgeReport:
    tenant: str
    dropped_tables: list[str] = field(default_factory=list)
    cleared_columns: dict[str, int] = field(default_factory=dict)  # table.column -> rows cleared
    rebuilt: bool = False
    seconds: float = 0.0


def out_of_scope(conn: Any, scope: Scope) -> tuple[list[str], list[tuple[str, str, str]]]:
    """What a warehouse holds beyond `scope`: raw tables to drop ("schema.table"), and
    (schema, table, column) holding values to clear. Staging copies count as their table."""
    present = conn.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = ?",
        [warehouse.ALIAS]).fetchall()
    columns = {(s, t, c) for s, t, c in conn.execute(
        "select schema_name, table_name, column_name from duckdb_columns() "
        "where database_name = ?", [warehouse.ALIAS]).fetchall()}
    drop, clear = [], []
    for schema, table in present:
        dataset = schema.removesuffix("_staging")
        raw = contract.BY_KEY.get((dataset, table))
        if raw is None:
            continue
        if not scope.allows_table(raw):
            drop.append(f"{schema}.{table}")
            continue
        clear += [(schema, table, c) for c in scope.dropped_columns(raw)
                  if (schema, table, c) in columns]
    return sorted(drop), sorted(clear)


def purge(name: str, *, rebuild: bool = True) -> PurgeReport:
    """Bring data already stored in line with the tenant's current scope: drop raw tables out
    of scope, set dropped shopper columns to NULL, rebuild the models that read them (if the
    tenant has models) and rewrite the file so the old values are physically gone.

    A source wholly out of scope loses its schemas, dlt's state included. A table dropped
    inside a source that stays keeps its incremental cursor: allowed again later, it is created
    anew and synced from where its cursor stood (a file drop can bring its older history)."""
    started = time.monotonic()
    report = PurgeReport(name)
    scope = of(tenants.get(name))
    if scope.everything or not warehouse.exists(name):
        return report
    touched: set[str] = set()
    with warehouse.open_warehouse(name, purpose="scope_purge") as conn:
        drop, clear = out_of_scope(conn, scope)
        for qualified in drop:
            schema, table = qualified.split(".")
            conn.execute(f'drop table "{schema}"."{table}"')
            touched.add(schema.removeprefix("raw_").removesuffix("_staging"))
        # dlt's stored schema still lists a dropped table: without it, dlt compares its schema
        # with the tables that really exist on the next load (and creates a table that is
        # allowed again). Its incremental cursors (_dlt_pipeline_state) stay.
        for schema in sorted({q.split(".")[0] for q in drop if not q.split(".")[0].endswith(
                "_staging")}):
            if conn.execute("select count(*) from duckdb_tables() where database_name = ? and "
                            "schema_name = ? and table_name = '_dlt_version'",
                            [warehouse.ALIAS, schema]).fetchone()[0]:
                conn.execute(f'delete from "{schema}"._dlt_version')
        for schema, table, column in clear:
            (count,) = conn.execute(
                f'select count(*) from "{schema}"."{table}" where "{column}" is not null').fetchone()
            if count:
                conn.execute(f'update "{schema}"."{table}" set "{column}" = null')
                touched.add(schema.removeprefix("raw_").removesuffix("_staging"))
            report.cleared_columns[f"{schema}.{table}.{column}"] = int(count)
        # Whole sources out of scope: their schemas (with dlt's state) go entirely.
        schemas = {s for (s,) in conn.execute(
            "select schema_name from duckdb_schemas() where database_name = ?",
            [warehouse.ALIAS]).fetchall()}
        for source in _source_names():
            if scope.allows_source(source):
                continue
            for schema in (f"raw_{source}", f"raw_{source}_staging"):
                if schema in schemas:
                    conn.execute(f'drop schema "{schema}" cascade')
                    touched.add(source)
        report.dropped_tables = drop
    if touched:
        if rebuild:
            report.rebuilt = retention.rebuild_models(name, sorted(touched))
        warehouse.rewrite(name, purpose="scope_purge")
    audit.append("scope_purged", tenant=name, dropped_tables=report.dropped_tables,
                 cleared_columns=sorted(report.cleared_columns), rebuilt=report.rebuilt)
    report.seconds = round(time.monotonic() - started, 2)
    return report
