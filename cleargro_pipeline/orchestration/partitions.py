"""Tenants are dynamic partitions (one partition key per registered tenant), the instance that
knows them, and the partition keys of report periods."""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg

from cleargro_pipeline import bootstrap, tenants
from cleargro_pipeline.controls import deletion

tenant_partitions = dg.DynamicPartitionsDefinition(name="tenants")


def sync_tenant_partitions(instance: dg.DagsterInstance) -> list[str]:
    """Make the instance's partitions match the registry; returns the registered tenant names
    that are not being deleted (schedules skip those; the deletion job removes the partition)."""
    being_deleted = deletion.deleting()
    names = [t.name for t in tenants.all_tenants() if t.name not in being_deleted]
    existing = set(instance.get_dynamic_partitions(tenant_partitions.name))
    missing = [n for n in names if n not in existing]
    if missing:
        instance.add_dynamic_partitions(tenant_partitions.name, missing)
    return names


def dagster_instance() -> dg.DagsterInstance:
    """The DAGSTER_HOME instance, with every registered tenant as a partition."""
    instance = bootstrap.dagster_instance()
    sync_tenant_partitions(instance)
    return instance


def iso_week(monday: str) -> str:
    """`2026-11-16` (a week partition key) -> `2026-W47`."""
    year, week, _ = date.fromisoformat(monday).isocalendar()
    return f"{year}-W{week:02d}"


def week_key(period: str) -> str:
    """`2026-W47` -> `2026-11-16`, the partition key of that week."""
    return datetime.strptime(f"{period}-1", "%G-W%V-%u").date().isoformat()


def month_key(period: str) -> str:
    """`2026-11` -> `2026-11-01`."""
    return f"{period}-01"
