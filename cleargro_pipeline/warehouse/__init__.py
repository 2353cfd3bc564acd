"""A tenant's encrypted warehouse: the connection (`connection`), the queries other rooms
read (`queries`) and the one path to dbt (`dbt`). The connection's API is re-exported
here, so `from cleargro_pipeline import warehouse; warehouse.open_warehouse(...)` works."""

from cleargro_pipeline.warehouse.connection import (
    ALIAS,
    DBT_KEY_ENV,
    DBT_PATH_ENV,
    DBT_TEMP_ENV,
    ENCRYPTED_FLAG_OFFSET,
    HEADER_BYTES,
    LOCK_TIMEOUT_S,
    WarehouseError,
    check_file,
    dbt_session,
    ensure_httpfs,
    httpfs_extension_file,
    open_file,
    open_warehouse,
    rewrite,
    writer_lock,
)

__all__ = ["ALIAS", "DBT_KEY_ENV", "DBT_PATH_ENV", "DBT_TEMP_ENV", "ENCRYPTED_FLAG_OFFSET",
           "HEADER_BYTES", "LOCK_TIMEOUT_S", "WarehouseError", "check_file", "dbt_session",
           "ensure_httpfs", "httpfs_extension_file", "open_file", "open_warehouse", "rewrite",
           "writer_lock"]
