"""Tenants are dynamic partitions: one partition key per registered tenant."""

from __future__ import annotations

import dagster as dg

from cleargro_pipeline import tenants
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
