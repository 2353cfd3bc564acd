"""Dagster's SQLite event log, with the per-event overhead taken out.

A tenant's run writes about 840 events (planned, output, materialization and check events for
some 270 assets and checks). Dagster's `SqliteEventLogStorage` builds a new SQLAlchemy engine for
every write (so no compiled statement is ever reused and every engine registers listeners) and
commits with SQLite's default `synchronous=FULL`: 10 to 18 ms an event on this machine, about as
long as the tenant's whole dbt build. `KeptEngineSqliteEventLogStorage` is the same storage, the
same files and schema, with two changes:

- an engine per shard (a run's file, the index) kept with one open connection, for the
  shards the process used last: closing a WAL database's last connection checkpoints and
  truncates its log, which Dagster's storage did on every write. A forked process (the
  launcher's run workers) drops the engines it inherited, unclosed, and opens its own;
- `PRAGMA synchronous=NORMAL` on each connection: the shards are in WAL mode already, where
  NORMAL is SQLite's recommended setting: a commit survives the process crashing; only the OS
  crashing or the power failing can roll back the last commits, never corrupt the file. A run
  cut off that way is one run monitoring marks failed; the tenant's data is in its warehouse,
  whose writes do not depend on this.

Configured by `cleargro init`'s dagster.yaml (`bootstrap.dagster_yaml`). A production deployment
stores events in PostgreSQL instead.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.pool import QueuePool

# Shards whose engines a process keeps open: the index, the run it executes, a few it serves.
KEPT_SHARDS = 8


class KeptEngineSqliteEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data: Any = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]
                          ) -> KeptEngineSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        if self._engines_pid != os.getpid():
            # Forked: the parent's connections are the parent's (SQLite handles must not cross
            # a fork). Drop them without closing and start afresh.
            self._engines, self._engines_pid = OrderedDict(), os.getpid()
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard), poolclass=QueuePool, pool_size=1,
                max_overflow=8, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                              "check_same_thread": False})
            event.listen(engine, "connect", _synchronous_normal)
            self._engines[shard] = engine
            if len(self._engines) > KEPT_SHARDS:
                self._engines.popitem(last=False)[1].dispose()
        self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def delete_events(self, run_id: str) -> None:
        # The run's shard file is removed after this (the deletion job unlinks it): forget it,
        # so a later write for that id would create and initialise it again.
        super().delete_events(run_id)
        with self._db_lock:
            self._initialized_dbs.discard(run_id)
            engine = self._engines.pop(run_id, None)
        if engine is not None and self._engines_pid == os.getpid():
            engine.dispose()

    def truncate_index_log(self) -> None:
        """Checkpoint the index shard and empty its write-ahead log: after a deletion, the log's
        older page images still hold what was deleted (the database file's freed pages are
        zeroed, SQLite's secure_delete being on). Readers idle in other processes do not block
        it; a busy one makes this an error, and the deletion step is retried."""
        with self._db_lock, self._engine(INDEX_SHARD_NAME).connect() as conn:
            # Outside a transaction (pysqlite begins one before DML only), as a checkpoint must.
            busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        if busy:
            raise RuntimeError(f"the event log index {self.path_for_shard(INDEX_SHARD_NAME)} is "
                               "busy; its write-ahead log could not be emptied")

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            engines, self._engines = list(self._engines.values()), OrderedDict()
        if self._engines_pid == os.getpid():
            for engine in engines:
                engine.dispose()


def _synchronous_normal(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
