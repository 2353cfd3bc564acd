"""Dagster definitions: one small module per concern (partitions, translator, ingestion,
transformation, jobs). Nothing here reads secrets or touches data at import time."""
