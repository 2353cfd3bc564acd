"""Dagster helpers that are not definitions: the tenant partitions and the one translator of asset keys and groups."""
