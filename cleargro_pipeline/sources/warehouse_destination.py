"""dlt's DuckDB destination, pointed at the tenant's attached encrypted catalog.

dlt works on `conn.duplicate()` clones, which do not inherit `USE wh`: with
stock dlt the tables would land silently in the in-memory catalog. Naming the
attached alias as dlt's catalog makes every qualified name `wh.<dataset>.<t>`.
"""

from __future__ import annotations

from typing import Optional, Type

import duckdb
from dlt.destinations import duckdb as duckdb_destination
from dlt.destinations.impl.duckdb.duck import DuckDbClient
from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient


class _AttachedCatalogSqlClient(DuckDbSqlClient):
    catalog: str = "wh"

    def catalog_name(self, quote: bool = True, casefold: bool = True) -> Optional[str]:
        name = self.capabilities.casefold_identifier(self.catalog) if casefold else self.catalog
        return self.capabilities.escape_identifier(name) if quote else name


class _AttachedCatalogClient(DuckDbClient):
    def __init__(self, schema, config, capabilities) -> None:  # type: ignore[no-untyped-def]
        super().__init__(schema, config, capabilities)
        self.sql_client = _AttachedCatalogSqlClient(
            self.sql_client.dataset_name, self.sql_client.staging_dataset_name,
            config.credentials, capabilities)


class attached_duckdb(duckdb_destination):  # noqa: N801 - dlt names destinations in lower case
    """Destination factory for an open connection whose tenant catalog is attached as `wh`."""

    @property
    def client_class(self) -> Type[DuckDbClient]:
        return _AttachedCatalogClient


def warehouse_destination(conn: duckdb.DuckDBPyConnection) -> attached_duckdb:
    return attached_duckdb(credentials=conn, destination_name="tenant_warehouse")
