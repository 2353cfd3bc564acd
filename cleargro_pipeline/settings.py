"""Where things live on disk. Every path the project writes is derived here."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

# Tenant names become partition keys, folder names and SQL-free labels:
# a strict pattern keeps path traversal and quoting problems out.
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Paths:
    data: Path

    @property
    def keys(self) -> Path:
        return self.data / "keys"

    @property
    def master_key_file(self) -> Path:
        return self.keys / "master.key"

    @property
    def registry(self) -> Path:
        return self.data / "registry"

    @property
    def audit_log(self) -> Path:
        return self.data / "audit" / "audit.log"

    @property
    def tenants(self) -> Path:
        return self.data / "tenants"

    @property
    def work(self) -> Path:
        """dlt and dbt working folders: transient, removed after every run."""
        return self.data / "work"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.data / "dagster_home")

    def tenant_dir(self, tenant: str) -> Path:
        return self.tenants / tenant

    def warehouse(self, tenant: str) -> Path:
        return self.tenant_dir(tenant) / "warehouse.duckdb"

    def tenant_tmp(self, tenant: str) -> Path:
        return self.tenant_dir(tenant) / "tmp"

    def tenant_work(self, tenant: str) -> Path:
        return self.work / tenant


def paths() -> Paths:
    """Read at call time (never import time) so tests and deployments can redirect data/."""
    return Paths(Path(os.environ.get("CLEARGRO_DATA_DIR") or PROJECT_ROOT / "data").resolve())


def lock_timeout_s() -> float:
    """How long a step waits for a tenant's warehouse (`CLEARGRO_LOCK_TIMEOUT_S`, default 30
    minutes); read when used, so tests and deployments can change it."""
    return float(os.environ.get("CLEARGRO_LOCK_TIMEOUT_S", "1800"))
