"""The Dagster code location: every definition module under `defs/`, found by
`load_from_defs_folder` through `[tool.dg]` in pyproject.toml. Dagster's tools load `defs`
(workspace.yaml, `dg`); the runner and tests use `loaded_defs()`."""

import functools
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    # No resources: the dbt asset runs dbt through `warehouse.dbt`, not a DbtCliResource.
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


@functools.cache
def loaded_defs() -> dg.Definitions:
    """The code location's definitions, built once per process (`defs` is Dagster's lazy
    loader, not a Definitions object)."""
    return defs()
