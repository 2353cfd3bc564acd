"""A tenant's encrypted warehouse: the connection (`connection`), the queries other rooms
read (`queries`) and the one path to dbt (`dbt`). The connection's API is re-exported
here, so `from cleargro_pipeline import warehouse; warehouse.open_warehouse(...)` works."""

from cleargro_pipeline.warehouse.connection import (
    ALIAS,
    ENCRYPTED_FLAG_OFFSET,
    HEADER_BYTES,
    WarehouseError,
    WrongKey,
    check_file,
    ensure_httpfs,
    exists,
    httpfs_extension_file,
    open_file,
    open_warehouse,
    rewrite,
    transaction,
    wait_for_writers,
    writer_lock,
)

__all__ = ["ALIAS", "ENCRYPTED_FLAG_OFFSET", "HEADER_BYTES", "WarehouseError", "WrongKey",
           "check_file", "ensure_httpfs", "exists", "httpfs_extension_file", "open_file",
           "open_warehouse", "rewrite", "transaction", "wait_for_writers", "writer_lock"]
